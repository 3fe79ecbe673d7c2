#!/usr/bin/env bash
# Perplexity and KL-divergence against llama.cpp's llama-perplexity (built from the same source),
# on the same model, text and context: the numbers must agree, and the ratio of times says how
# fast switchyard is. Then the top-K base file: its size and the KLD error it causes, per K.
# Usage: bench/perplexity.sh [CHUNKS (default 100)]
source "$(dirname "$0")/common.sh"
chunks="${1:-100}"
ctx=256
text="$data/data/tinystories-valid-head.txt"
model="$data/models/stories260K-f32.gguf"
[ -x "$tools/llama-perplexity" ] || { echo "bench: llama-perplexity not built" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$sy" quantize "$model" "$out/q4.gguf" Q4_0 -t "$threads" > /dev/null

lp=("$tools/llama-perplexity" -f "$text" -c $ctx -b $ctx --chunks "$chunks" -t "$threads")
ours=("$sy" eval --text "$text" -c $ctx --chunks "$chunks" -t "$threads" --json)

echo "perplexity of $(basename "$model"), $chunks chunks of $ctx tokens, $threads threads, median of $repeats runs"
theirs_ppl=$("${lp[@]}" -m "$model" 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
ours_ppl=$("${ours[@]}" -m "$model" | jq .perplexity)
t_theirs=$(median_seconds "${lp[@]}" -m "$model")
t_ours=$(median_seconds "${ours[@]}" -m "$model")
printf '  PPL llama-perplexity %.6f  switchyard %.6f  (difference %+.4f%%)\n' "$theirs_ppl" "$ours_ppl" "$(echo "($ours_ppl - $theirs_ppl) / $theirs_ppl * 100" | bc -l)"
printf '  time llama-perplexity %.3f s  switchyard %.3f s  throughput ratio %.2f\n' "$t_theirs" "$t_ours" "$(echo "$t_theirs / $t_ours" | bc -l)"

echo "KL-divergence of Q4_0 against F32"
"${lp[@]}" -m "$model" --kl-divergence-base "$out/base.kld" > /dev/null 2>&1
theirs_kld=$("${lp[@]}" -m "$out/q4.gguf" --kl-divergence-base "$out/base.kld" --kl-divergence 2>&1 | sed -n 's/^Mean    KLD: *\([0-9.]*\).*/\1/p')
ours_kld=$("${ours[@]}" -m "$out/q4.gguf" --base "$model" --top-k 0 | jq .drift.kld.mean)
t_theirs=$(median_seconds "${lp[@]}" -m "$out/q4.gguf" --kl-divergence-base "$out/base.kld" --kl-divergence)
"$sy" eval -m "$out/q4.gguf" --base "$model" --text "$text" -c $ctx --chunks "$chunks" -t "$threads" --top-k 0 --save-base "$out/full.ref" --json > /dev/null
t_ours=$(median_seconds "${ours[@]}" -m "$out/q4.gguf" --base-file "$out/full.ref")
printf '  mean KLD llama-perplexity %.6f  switchyard %.6f  (difference %+.3f%%)\n' "$theirs_kld" "$ours_kld" "$(echo "($ours_kld - $theirs_kld) / $theirs_kld * 100" | bc -l)"
printf '  time from a stored base: llama-perplexity %.3f s  switchyard %.3f s  throughput ratio %.2f\n' "$t_theirs" "$t_ours" "$(echo "$t_theirs / $t_ours" | bc -l)"

echo "top-K base files (llama-perplexity's keeps every logit: $(stat -c %s "$out/base.kld") bytes)"
exact=$ours_kld
for k in 8 16 32 64 128 0; do
  kld=$("$sy" eval -m "$out/q4.gguf" --base "$model" --text "$text" -c $ctx --chunks "$chunks" -t "$threads" --top-k $k --save-base "$out/k$k.ref" --json | jq .drift.kld.mean)
  printf '  K=%-4s %10d bytes  mean KLD %.6f  error %+.3f%%\n' "$([ $k = 0 ] && echo all || echo $k)" "$(stat -c %s "$out/k$k.ref")" "$kld" "$(echo "($kld - $exact) / $exact * 100" | bc -l)"
done
