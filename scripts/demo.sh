#!/usr/bin/env bash
# Sets everything up, then runs switchyard's main job on the bundled example: should a team running
# babyllama compress it or switch to stories260K? `switchyard plan` builds the variants, measures
# them on BLiMP and a story cloze task, decides by the policy's rules and writes the report.
#
# Environment: SWITCHYARD_DATA_DIR (default ../shared) holds models/ and data/;
# SWITCHYARD_DEMO_OUT (default build/demo) receives the variants, reports and portfolio.
set -euo pipefail
cd "$(dirname "$0")/.."
# The engine and the switchyard binary only: tests and reference tools are scripts/test.sh's.
scripts/setup.sh switchyard

data="${SWITCHYARD_DATA_DIR:-../shared}"
for f in models/babyllama-0.9M-f32.gguf models/stories260K-f32.gguf data/tinystories-valid-head.txt data/blimp; do
  [ -e "$data/$f" ] || { echo "demo: $data/$f is missing; set SWITCHYARD_DATA_DIR to the folder holding models/ and data/" >&2; exit 1; }
done
export SWITCHYARD_DATA_DIR="$data"
out="${SWITCHYARD_DEMO_OUT:-build/demo}"

start=$(date +%s)
build/switchyard plan examples/tinystories/plan.yaml -o "$out" --results "$out/results.sqlite"
echo "demo: done in $(($(date +%s) - start)) s; open $out/report.html, or serve the portfolio: build/switchyard serve --portfolio $out/portfolio.yaml"
