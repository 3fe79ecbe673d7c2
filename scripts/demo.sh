#!/usr/bin/env bash
# Sets everything up, then runs switchyard on the bundled example: the shared tiny models.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

data="${SWITCHYARD_DATA_DIR:-../shared}"
base="$data/models/babyllama-0.9M-f32.gguf"
small="$data/models/stories260K-f32.gguf"
for m in "$base" "$small"; do
  [ -f "$m" ] || { echo "demo: $m is missing; set SWITCHYARD_DATA_DIR to the folder holding models/" >&2; exit 1; }
done

echo
echo "== the model a team has, and the small model it could switch to"
build/switchyard inspect "$base"
build/switchyard inspect "$small"
echo
echo "== greedy continuations of \"Once upon a time\""
for m in "$base" "$small"; do
  printf '%s:' "$(basename "$m")"
  build/switchyard generate -m "$m" -p "Once upon a time" -n 48 --temp 0
done
