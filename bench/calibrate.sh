#!/usr/bin/env bash
# Calibration throughput: `switchyard calibrate` against llama.cpp's llama-imatrix, built from the
# same source, on the same model, text, context and chunk count. Prints the ratio (>= 1: faster).
# Usage: bench/calibrate.sh [MODEL (default stories260K)] [CHUNKS (default 100)]
source "$(dirname "$0")/common.sh"
model="${1:-$data/models/stories260K-f32.gguf}"
chunks="${2:-100}"
ctx=512
text="$data/data/tinystories-valid-head.txt"
[ -x "$tools/llama-imatrix" ] || { echo "bench: llama-imatrix not built (engine installed without source?)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

theirs=$(median_seconds "$tools/llama-imatrix" -m "$model" -f "$text" -c $ctx --chunks "$chunks" -t "$threads" -o "$out/theirs.gguf")
ours=$(median_seconds "$sy" calibrate "$model" --data "$text" -c $ctx --chunks "$chunks" -t "$threads" -o "$out/ours.gguf")
tokens=$((chunks * ctx))
printf 'calibrate %s: %d chunks x %d tokens, %s threads, median of %s runs\n' "$(basename "$model")" "$chunks" $ctx "$threads" "$repeats"
printf '  llama-imatrix        %7.3f s  %9.0f tok/s\n' "$theirs" "$(echo "$tokens / $theirs" | bc -l)"
printf '  switchyard calibrate %7.3f s  %9.0f tok/s\n' "$ours" "$(echo "$tokens / $ours" | bc -l)"
printf '  throughput ratio (switchyard / llama-imatrix): %.2f\n' "$(echo "$theirs / $ours" | bc -l)"
