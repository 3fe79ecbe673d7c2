#!/usr/bin/env bash
# AWQ against plain and imatrix quantization on the shared trained models: drift (mean KLD, top-1
# agreement) against the F32 original on held-out text (chunks 1000-1199; calibration reads chunks
# 0-199), at Q4_0, Q3_K_S and Q2_K. Then the time of the alpha search (default grid, Q4_K_M) at
# generated model shapes. Prints Markdown tables; ratios are against imatrix alone in the same run.
# Usage: bench/awq.sh    (AWQ_BENCH_SHAPES="smollm2-135m llama-3.2-1b" picks the timed shapes)
source "$(dirname "$0")/common.sh"
text="$data/data/tinystories-valid-head.txt"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(--data "$text" --normalize -t "$threads" -c 128)
held_out=(--skip-chunks 1000 --chunks 200)

drift() {  # model, variant: "KLD top1"
  "$sy" compare "$1" "$2" "${common[@]}" "${held_out[@]}" --json | jq -r '"\(.kld.mean) \(.top1_agreement)"'
}

echo "| model | type | plain KLD | imatrix KLD | AWQ+imatrix KLD | AWQ / imatrix KLD | plain top-1 | imatrix top-1 | AWQ+imatrix top-1 |"
echo "|---|---|---|---|---|---|---|---|---|"
for name in babyllama-0.9M-f32 stories260K-f32; do
  model="$data/models/$name.gguf"
  "$sy" calibrate "$model" "${common[@]}" --chunks 200 -o "$out/$name.imatrix" > /dev/null 2>&1
  for type in Q4_0 Q3_K_S Q2_K; do
    "$sy" quantize "$model" "$out/plain.gguf" "$type" -t "$threads" > /dev/null
    "$sy" quantize "$model" "$out/imatrix.gguf" "$type" --imatrix "$out/$name.imatrix" -t "$threads" > /dev/null
    "$sy" awq "$model" -o "$out/awq.gguf" --imatrix "$out/$name.imatrix" --type "$type" --quantize -t "$threads" > /dev/null 2>&1
    read -r pk pt <<< "$(drift "$model" "$out/plain.gguf")"
    read -r ik it <<< "$(drift "$model" "$out/imatrix.gguf")"
    read -r ak at <<< "$(drift "$model" "$out/awq.gguf")"
    printf '| %s | %s | %.4e | %.4e | %.4e | %.3f | %.2f%% | %.2f%% | %.2f%% |\n' "${name%-f32}" "$type" "$pk" "$ik" "$ak" \
      "$(echo "$ak / $ik" | bc -l)" "$(echo "$pt * 100" | bc -l)" "$(echo "$it * 100" | bc -l)" "$(echo "$at * 100" | bc -l)"
  done
done

echo
echo "| shape | layers | alpha search (Q4_K_M, grid 0:1:0.05, $threads threads) | groups |"
echo "|---|---|---|---|"
for shape in ${AWQ_BENCH_SHAPES:-smollm2-135m llama-3.2-1b}; do
  "$sy" make-model "$shape" "$out/$shape.gguf" > /dev/null
  "$sy" calibrate "$out/$shape.gguf" --data "$text" -t "$threads" -c 128 --chunks 4 -o "$out/$shape.imatrix" > /dev/null 2>&1
  report=$("$sy" awq "$out/$shape.gguf" -o "$out/$shape-awq.gguf" --imatrix "$out/$shape.imatrix" -t "$threads" --json 2> /dev/null)
  printf '| %s | %s | %.1f s | %s |\n' "$shape" "$(jq .output.block_count <<< "$report")" \
    "$(jq .search_seconds <<< "$report")" "$(jq '.recipe.parameters.groups | length' <<< "$report")"
  rm -f "$out/$shape"*
done
