#!/usr/bin/env bash
# Speculative decoding and quantized KV caches at a real shape (generated with `switchyard
# make-model`, F16, random weights), switchyard against llama.cpp's own tools built from the same
# source, on the same files:
#   decode tokens/s of the F16 target alone and with each draft (its Q4_0, its Q2_K, and its upper
#   half of layers dropped then Q4_0), greedy, the same --draft-max on both sides:
#     `switchyard eval --speed [--draft D]`      vs llama-server [-md D --spec-type draft-simple]
#   what decides the speed-up: each model's time per token, and the target's time for a batch of
#   draft-max + 1 tokens (a verification: ours' prompts are that long, so their time to first token
#   is that batch) against one token
#   KV cache q8_0 and q4_0 (keys and values) at one context: KLD against the f16 cache on the same
#   text (ours keeps the base's top 1024 log-probabilities per position: at 64 it reads low on
#   random weights, see the README's --top-k), the cache's bytes and the peak RSS:
#     `switchyard eval --base-file --cache-type-k/-v` vs `llama-perplexity --kl-divergence -ctk/-ctv -fa on`
# Prints Markdown tables. Ratios are ours / theirs in the same invocation (for speed >= 1 means
# switchyard is as fast or faster; for KLD and memory <= 1 means as small or smaller).
#
# Usage: bench/speculative.sh [--shape SHAPE] [--draft-max N] [--generate N] [--requests N]
#                             [--repeats N] [--ctx N] [--chunks N] [--models DIR] [--only decode|kv]
#   --shape (default llama-3.2-1b): a `switchyard make-model` shape.
#   --draft-max N (default 4): tokens drafted per step at most, on both sides.
#   --generate N (default 16): tokens per query; ours times at least 6 rounds of 2 queries (the
#   faster counts), llama-server --requests N (default 4) requests, both after one warm-up query;
#   each side's median. The prompts differ: ours are draft-max + 1 tokens of a built-in passage,
#   llama-server's the text's first paragraphs cut to 160 characters.
#   --repeats N (default 1): runs of each pair, the two sides taking turns; the median is shown.
#   --ctx N (default 2048), --chunks N (default 1): the text for the KV rows (the first chunks of
#   tinystories-valid-head.txt, the same tokens on both sides).
#   --models DIR: keep the generated models there and reuse them on the next run.
#   --only decode, --only kv: the decode tables alone, or the KV cache table alone.
# On a machine others are using, run it with BENCH_THREADS=1: with as many threads as busy cores,
# llama.cpp's per-operation barriers wait on descheduled threads and both sides decode 10-36x
# slower, drafting (many small decodes) the most.
source "$(dirname "$0")/common.sh"
shape=llama-3.2-1b
draft_max=4
generate=16
requests=4
repeats=1
ctx=2048
chunks=1
models=""
only=""
while (($#)); do
  case "$1" in
    --shape) shape="$2"; shift 2 ;;
    --draft-max) draft_max="$2"; shift 2 ;;
    --generate) generate="$2"; shift 2 ;;
    --requests) requests="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --ctx) ctx="$2"; shift 2 ;;
    --chunks) chunks="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    *) echo "usage: bench/speculative.sh [--shape SHAPE] [--draft-max N] [--generate N] [--requests N] [--repeats N] [--ctx N] [--chunks N] [--models DIR] [--only decode|kv]" >&2; exit 1 ;;
  esac
done
for t in llama-perplexity llama-server; do
  [ -x "$tools/$t" ] || { echo "bench: $tools/$t not built" >&2; exit 1; }
done
command -v /usr/bin/time > /dev/null || { echo "bench: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
text="$data/data/tinystories-valid-head.txt"
work=$(mktemp -d)
server_pid=""
trap '[ -n "$server_pid" ] && kill "$server_pid" 2> /dev/null; rm -rf "$work"' EXIT
dir="${models:-$work}"
mkdir -p "$dir"

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }  # awk: jq may print 3.7e-05, which bc misreads

# The target and its drafts; with --models, those already there are kept.
target="$dir/$shape-f16.gguf"
[ -f "$target" ] || "$sy" make-model "$shape" "$target" --f16 > /dev/null
layers=$("$sy" inspect "$target" --json | jq .block_count)
drafts=(q4_0 q2_k "drop$((layers / 2))-q4_0")
declare -A draft_label=([q4_0]="Q4_0" [q2_k]="Q2_K" ["drop$((layers / 2))-q4_0"]="layers $((layers / 2))–$((layers - 1)) dropped, Q4_0")
[ -f "$dir/$shape-q4_0.gguf" ] || "$sy" quantize "$target" "$dir/$shape-q4_0.gguf" Q4_0 -t "$threads" > /dev/null
[ -f "$dir/$shape-q2_k.gguf" ] || "$sy" quantize "$target" "$dir/$shape-q2_k.gguf" Q2_K -t "$threads" > /dev/null
upper=$(seq -s, $((layers / 2)) $((layers - 1)))
[ -f "$dir/$shape-${drafts[2]}.gguf" ] ||
  "$sy" prune "$target" "$dir/$shape-${drafts[2]}.gguf" --layers-drop "$upper" --then-quantize Q4_0 -t "$threads" > /dev/null

# ours MODEL [DRAFT]: `eval --speed`'s JSON.
ours() {
  local args=("$sy" eval -m "$1" --speed --speed-prompt $((draft_max + 1)) --speed-generate "$generate"
    --speed-repeats 6 --no-results -t "$threads" --json)
  [ -n "${2:-}" ] && args+=(--draft "$2" --draft-max "$draft_max")
  "${args[@]}" 2> "$work/ours.err" || { echo "bench: failed: ${args[*]}" >&2; tail -3 "$work/ours.err" >&2; exit 1; }
}

# theirs MODEL [DRAFT]: llama-server's median decode tokens/s over $requests greedy completions of
# $generate tokens (end-of-generation ignored), and its share of proposals taken: "TPS ACCEPTANCE".
theirs() {
  local port args body
  port=$(free_port)
  args=("$tools/llama-server" -m "$1" -c 512 -np 1 -t "$threads" --port "$port")
  [ -n "${2:-}" ] && args+=(-md "$2" --spec-type draft-simple --spec-draft-n-max "$draft_max")
  "${args[@]}" > "$work/server.log" 2>&1 &
  server_pid=$!
  wait_ready "http://127.0.0.1:$port" "$server_pid" "$work/server.log"
  : > "$work/theirs.json"
  # The prompts differ (a cached prompt would skip the prefill): the text's paragraphs, cut to
  # about 32 tokens; the first request warms up.
  for i in $(seq 0 "$requests"); do
    body=$(jq -n --arg p "$(grep -v '^$' "$text" | sed -n "$((i + 1))p" | cut -c1-160)" --argjson n "$generate" \
      '{prompt: $p, n_predict: $n, temperature: 0, ignore_eos: true, cache_prompt: false}')
    curl -s "http://127.0.0.1:$port/completion" -H 'Content-Type: application/json' -d "$body" | jq -c .timings > "$work/t.json"
    [ "$i" -gt 0 ] && cat "$work/t.json" >> "$work/theirs.json"
  done
  kill "$server_pid"
  wait "$server_pid" 2> /dev/null || true
  server_pid=""
  echo "$(jq .predicted_per_second "$work/theirs.json" | median)" \
    "$(jq -s 'map(.draft_n // 0) as $d | map(.draft_n_accepted // 0) as $a | if ($d | add) > 0 then ($a | add) / ($d | add) else 0 end' "$work/theirs.json")"
}

if [ "$only" != kv ]; then
  echo "speculative decoding: $shape F16 target, $threads threads, --draft-max $draft_max, $generate tokens per query, medians of $repeats runs"
  echo
  # Decode rates: the target alone and with each draft, the two sides taking turns.
  configs=(none "${drafts[@]}")
  for _ in $(seq "$repeats"); do
    for c in "${configs[@]}"; do
      d=""
      [ "$c" != none ] && d="$dir/$shape-$c.gguf"
      read -r tps acc <<< "$(theirs "$target" "$d")"
      echo "$tps" >> "$work/theirs-$c.tps"
      echo "$acc" >> "$work/theirs-$c.acc"
      ours "$target" "$d" > "$work/o.json"
      [ "$c" = none ] && jq .speed.ttft_p50_ms "$work/o.json" >> "$work/verify.ms"
      jq .speed.decode_tokens_per_s "$work/o.json" >> "$work/ours-$c.tps"
      jq '.speed.draft.acceptance // 0' "$work/o.json" >> "$work/ours-$c.acc"
      jq '.speed.draft // {} | "\(.drafted // 0) \(.accepted // 0) \(.steps // 0)"' -r "$work/o.json" >> "$work/ours-$c.counts"
    done
  done
  for c in "${configs[@]}"; do
    for f in theirs-$c.tps theirs-$c.acc ours-$c.tps ours-$c.acc; do median < "$work/$f" > "$work/$f.m"; done
  done
  m() { cat "$work/$1.m"; }
  echo "| draft | file MiB | ours: tok/s alone | with draft | speed-up | taken | llama-server: tok/s alone | with draft | speed-up | taken | ours / llama-server (with draft) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for c in "${drafts[@]}"; do
    printf '| %s | %.0f | %.2f | %.2f | %.2f | %.1f%% | %.2f | %.2f | %.2f | %.1f%% | %.2f |\n' "${draft_label[$c]}" \
      "$(echo "$(stat -c %s "$dir/$shape-$c.gguf") / 1048576" | bc -l)" \
      "$(m ours-none.tps)" "$(m "ours-$c.tps")" "$(ratio "$(m "ours-$c.tps")" "$(m ours-none.tps)")" "$(echo "$(m "ours-$c.acc") * 100" | bc -l)" \
      "$(m theirs-none.tps)" "$(m "theirs-$c.tps")" "$(ratio "$(m "theirs-$c.tps")" "$(m theirs-none.tps)")" "$(echo "$(m "theirs-$c.acc") * 100" | bc -l)" \
      "$(ratio "$(m "ours-$c.tps")" "$(m "theirs-$c.tps")")"
  done

  # What a drafted step costs against what it yields (ours): a step proposes about P tokens (P draft
  # decodes) and verifies them in one target batch of P + 1; it yields the taken tokens and one of
  # the target's own. The batch's time is the target's time to first token for its prompt of
  # draft-max + 1 tokens; each draft's time per token comes from a speed pass of its own.
  echo
  echo "| model | ms per token (decode) | ms for a batch of $((draft_max + 1)) tokens |"
  echo "|---|---|---|"
  target_ms=$(echo "1000 / $(m ours-none.tps)" | bc -l)
  verify_ms=$(median < "$work/verify.ms")
  printf '| target F16 | %.1f | %.1f (%.2f× one token) |\n' "$target_ms" "$verify_ms" "$(ratio "$verify_ms" "$target_ms")"
  for c in "${drafts[@]}"; do
    ours "$dir/$shape-$c.gguf" > "$work/d.json"
    echo "1000 / $(jq .speed.decode_tokens_per_s "$work/d.json")" | bc -l > "$work/$c.ms"
    printf '| draft %s | %.1f (%.2f of the target'"'"'s) | |\n' "${draft_label[$c]}" "$(cat "$work/$c.ms")" "$(ratio "$(cat "$work/$c.ms")" "$target_ms")"
  done
  echo
  echo "| draft | proposed per step | taken per step | tokens per step | step: drafting + verifying (ms) | predicted tok/s | measured tok/s |"
  echo "|---|---|---|---|---|---|---|"
  for c in "${drafts[@]}"; do
    read -r drafted accepted steps < <(tail -1 "$work/ours-$c.counts")
    read -r p a step pred <<< "$(echo "$drafted $accepted $steps $(cat "$work/$c.ms") $verify_ms" |
      awk '{ p = $1 / $3; a = $2 / $3; step = p * $4 + $5; printf "%f %f %f %f", p, a, step, (a + 1) * 1000 / step }')"
    printf '| %s | %.2f | %.2f | %.2f | %.0f + %.0f | %.2f | %.2f |\n' "${draft_label[$c]}" "$p" "$a" "$(echo "$a + 1" | bc -l)" \
      "$(echo "$p * $(cat "$work/$c.ms")" | bc -l)" "$verify_ms" "$pred" "$(tail -1 "$work/ours-$c.tps")"
  done

fi

[ "$only" = decode ] && exit 0
# KV cache rows: the base (f16 cache) recorded once per side, then each quantized cache against it.
echo
echo "KV cache: $shape F16, $chunks chunks of $ctx tokens of $(basename "$text"), keys and values of one type"
echo
echo "| cache | KLD: ours | llama-perplexity | ours / theirs | cache MiB: ours | theirs | peak RSS MiB: ours | theirs | ours / theirs |"
echo "|---|---|---|---|---|---|---|---|---|"
# -v: llama-perplexity logs its cache's size at the info level.
lp=("$tools/llama-perplexity" -m "$target" -f "$text" -c "$ctx" -b "$ctx" --chunks "$chunks" -t "$threads" -v)
# kv_mib NAME: the cache's size as llama.cpp logs it when it makes one ("llama_kv_cache: size = ...").
kv_mib() { cat "$work/$1.out" "$work/$1.err" | sed -n 's/.*llama_kv_cache: size = *\([0-9.]*\) MiB.*/\1/p' | tail -1; }
rss_mib() { awk '{ printf "%.0f", $1 / 1024 }' "$work/$1.rss"; }
run_timed() {  # run_timed NAME COMMAND...: stdout to NAME.out, stderr to NAME.err, peak RSS (KiB) to NAME.rss
  local name=$1
  shift
  /usr/bin/time -f "%M" -o "$work/$name.rss" "$@" > "$work/$name.out" 2> "$work/$name.err" || { echo "bench: failed: $*" >&2; tail -5 "$work/$name.err" >&2; exit 1; }
}
run_timed theirs-base "${lp[@]}" --kl-divergence-base "$work/theirs.kld"
run_timed ours-base "$sy" -vv eval -m "$target" --text "$text" -c "$ctx" --chunks "$chunks" -t "$threads" \
  --save-base "$work/ours.ref" --top-k 1024 --no-results --json
printf '| f16 (the base) | | | | %.0f | %.0f | %s | %s | %.2f |\n' "$(kv_mib ours-base)" "$(kv_mib theirs-base)" \
  "$(rss_mib ours-base)" "$(rss_mib theirs-base)" "$(ratio "$(rss_mib ours-base)" "$(rss_mib theirs-base)")"
for type in q8_0 q4_0; do
  run_timed theirs "${lp[@]}" --kl-divergence-base "$work/theirs.kld" --kl-divergence -ctk "$type" -ctv "$type" -fa on
  run_timed ours "$sy" -vv eval -m "$target" --base-file "$work/ours.ref" -c "$ctx" --cache-type-k "$type" \
    --cache-type-v "$type" -t "$threads" --no-results --json
  theirs_kld=$(cat "$work/theirs.out" "$work/theirs.err" | sed -n 's/^Mean    KLD: *\([-0-9.e]*\).*/\1/p')
  ours_kld=$(jq .drift.kld.mean "$work/ours.out")
  printf '| %s | %.3e | %.3e | %.2f | %.0f | %.0f | %s | %s | %.2f |\n' "$type" "$ours_kld" "$theirs_kld" "$(ratio "$ours_kld" "$theirs_kld")" \
    "$(kv_mib ours)" "$(kv_mib theirs)" "$(rss_mib ours)" "$(rss_mib theirs)" "$(ratio "$(rss_mib ours)" "$(rss_mib theirs)")"
done
