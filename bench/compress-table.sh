#!/usr/bin/env bash
# The compression table for a base model: every 32-block quantization type without and with an
# importance matrix, magnitude vs Wanda pruning (50% unstructured and 2:4), and a budgeted mix
# against llama.cpp's uniform types. Drift (KLD, top-1 agreement) is measured against the original
# on text held out from calibration. Prints a Markdown table.
# Usage: bench/compress-table.sh [MODEL (default babyllama)]
source "$(dirname "$0")/common.sh"
model="${1:-$data/models/babyllama-0.9M-f32.gguf}"
text="$data/data/tinystories-valid-head.txt"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(--data "$text" --normalize -t "$threads")
held_out=(--skip-chunks 1000 --chunks 200)  # never seen by calibration (chunks 0-199) or the mix search (0-15)

"$sy" calibrate "$model" "${common[@]}" --chunks 200 -o "$out/imatrix.gguf" > /dev/null 2>&1

row() {  # name, file: size, bpw, KLD and top-1 on held-out text
  local info drift
  info=$("$sy" inspect --json "$2")
  drift=$("$sy" compare "$model" "$2" "${common[@]}" "${held_out[@]}" --json)
  printf '| %s | %s | %.2f | %.4e | %.4e | %.2f%% |\n' "$1" "$(jq .file_bytes <<< "$info")" "$(jq .bits_per_weight <<< "$info")" \
    "$(jq .kld.mean <<< "$drift")" "$(jq .kld.p99 <<< "$drift")" "$(jq '.top1_agreement * 100' <<< "$drift")"
}

echo "| variant | bytes | bpw | mean KLD | p99 KLD | top-1 |"
echo "|---|---|---|---|---|---|"
for type in F16 Q8_0 Q5_1 Q5_0 Q4_1 Q4_0 IQ4_NL; do
  "$sy" quantize "$model" "$out/$type.gguf" "$type" -t "$threads" > /dev/null
  row "$type" "$out/$type.gguf"
  "$sy" quantize "$model" "$out/$type-imatrix.gguf" "$type" --imatrix "$out/imatrix.gguf" -t "$threads" > /dev/null
  row "$type + imatrix" "$out/$type-imatrix.gguf"
done
for pattern in unstructured 2:4; do
  for method in magnitude wanda; do
    name="$method-${pattern/:/-}"
    sparsity=(--sparsity 0.5); [ "$pattern" = unstructured ] || sparsity=()
    "$sy" prune "$model" "$out/$name.gguf" --method "$method" "${sparsity[@]}" --pattern "$pattern" --imatrix "$out/imatrix.gguf" > /dev/null
    row "$method 50% $pattern" "$out/$name.gguf"
  done
done
budget="${MIX_BUDGET:-600K}"
"$sy" mix "$model" "$out/mix.gguf" --budget "$budget" --types Q8_0,Q5_0,Q4_0 "${common[@]}" --chunks 16 > /dev/null 2>&1
row "mix (budget $budget of Q8_0/Q5_0/Q4_0)" "$out/mix.gguf"
