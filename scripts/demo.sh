#!/usr/bin/env bash
# Sets everything up, then runs switchyard on the bundled example: the shared tiny models, as the
# model a team has (babyllama) and the small model it could switch to (stories260K). Until
# `switchyard plan` exists this walks the stages by hand: inspect, generate, compress, measure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

data="${SWITCHYARD_DATA_DIR:-../shared}"
base="$data/models/babyllama-0.9M-f32.gguf"
small="$data/models/stories260K-f32.gguf"
text="$data/data/tinystories-valid-head.txt"
blimp="$data/data/blimp/irregular_past_participle_verbs.jsonl"
for f in "$base" "$small" "$text" "$blimp"; do
  [ -f "$f" ] || { echo "demo: $f is missing; set SWITCHYARD_DATA_DIR to the folder holding models/ and data/" >&2; exit 1; }
done
out=build/demo
mkdir -p "$out"
sy=build/switchyard

echo
echo "== the model a team has, and the small model it could switch to"
$sy inspect "$base"
$sy inspect "$small"
echo
echo "== greedy continuations of \"Once upon a time\""
for m in "$base" "$small"; do
  printf '%s:' "$(basename "$m")"
  $sy generate -m "$m" -p "Once upon a time" -n 48 --temp 0
done
echo
echo "== compress the base: an importance matrix from the stories, then Q4_0 with it"
$sy calibrate "$base" --data "$text" --normalize --chunks 200 -o "$out/babyllama.imatrix" 2> /dev/null
$sy quantize "$base" "$out/babyllama-q4_0.gguf" Q4_0 --imatrix "$out/babyllama.imatrix"
echo
echo "== measure: the compressed model against its original, and the small model, on the same task"
$sy eval -m "$out/babyllama-q4_0.gguf" --base "$base" --tasks "blimp:$blimp" --text "$text" --skip-chunks 1000 --chunks 100 --normalize --no-results 2> /dev/null
$sy eval -m "$small" --tasks "blimp:$blimp" --no-results 2> /dev/null
