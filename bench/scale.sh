#!/usr/bin/env bash
# The scale ladder: models with real shapes (generated with `switchyard make-model`, F16, random
# weights), and per rung switchyard against llama.cpp's own tool built from the same source, on the
# same inputs, one run each:
#   quantize Q4_K_M          vs llama-quantize
#   calibrate                vs llama-imatrix
#   eval --text (perplexity) vs llama-perplexity
#   KLD from a stored base   vs llama-perplexity --kl-divergence (and both base files' bytes)
#   serve, decode tokens/s   vs llama-server, 1 and 4 requests in parallel (same client: curl)
#   plan with three variants (no counterpart: its wall time split by stage)
# Prints wall times (the median of --repeats runs, the two sides taking turns), their ratio
# (llama.cpp's / switchyard's: >= 1 means switchyard is as fast or faster), tokens/s and the peak
# RSS of both sides (/usr/bin/time, the highest of the runs; VmHWM for the servers).
#
# Usage: bench/scale.sh [--upto RUNG | --only RUNG] [--1b] [--chunks N] [--ctx N] [--requests N] [--repeats N]
#   rungs: smollm2-135m, qwen2.5-0.5b, and llama-3.2-1b with --1b; --upto stops after that rung,
#   --only runs that one alone.
#   --chunks N (default 4) chunks of --ctx N (default 128) tokens for calibrate, eval and KLD:
#   small enough that the first two rungs finish in under 20 minutes on 2 cores; --requests N
#   (default 4) completions of 16 tokens per client against each server; --repeats N (default 3)
#   runs of each timed pair and server measurement (the plan runs once).
source "$(dirname "$0")/common.sh"
rungs=(smollm2-135m qwen2.5-0.5b)
upto=""
chunks=4
ctx=128
requests=4
repeats=3
while (($#)); do
  case "$1" in
    --upto) upto="$2"; shift 2 ;;
    --only) rungs=("$2"); shift 2 ;;
    --1b) rungs+=(llama-3.2-1b); shift ;;
    --chunks) chunks="$2"; shift 2 ;;
    --ctx) ctx="$2"; shift 2 ;;
    --requests) requests="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    *) echo "usage: bench/scale.sh [--upto RUNG | --only RUNG] [--1b] [--chunks N] [--ctx N] [--requests N] [--repeats N]" >&2; exit 1 ;;
  esac
done
if [ -n "$upto" ] && [ "$upto" = llama-3.2-1b ]; then rungs=(smollm2-135m qwen2.5-0.5b llama-3.2-1b); fi
for t in llama-quantize llama-imatrix llama-perplexity llama-server; do
  [ -x "$tools/$t" ] || { echo "bench: $tools/$t not built" >&2; exit 1; }
done
command -v /usr/bin/time > /dev/null || { echo "bench: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
text="$data/data/tinystories-valid-head.txt"
work=$(mktemp -d)
server_pids=()
trap 'for p in "${server_pids[@]}"; do kill "$p" 2> /dev/null || true; done; rm -rf "$work"' EXIT

# timed NAME COMMAND...: runs it under /usr/bin/time, adding its wall seconds to $work/NAME.walls
# and its peak RSS to $work/NAME.rss; sets NAME_s (the median of the runs so far) and NAME_mib
# (the highest peak), keeps the last run's output in $work/NAME.log.
timed() {
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" > "$work/$name.log" 2>&1 || { echo "bench: failed: $*" >&2; tail -5 "$work/$name.log" >&2; exit 1; }
  read -r s kib < "$work/$name.time"
  echo "$s" >> "$work/$name.walls"
  echo "$kib" >> "$work/$name.rss"
  printf -v "${name}_s" '%s' "$(median < "$work/$name.walls")"
  printf -v "${name}_mib" '%.0f' "$(echo "$(sort -g "$work/$name.rss" | tail -1) / 1024" | bc -l)"
}

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# pair THEIRS OURS: runs the commands in the arrays THEIRS_cmd and OURS_cmd $repeats times, taking
# turns, through timed.
pair() {
  local -n theirs_cmd="$1_cmd" ours_cmd="$2_cmd"
  rm -f "$work/$1".{walls,rss} "$work/$2".{walls,rss}
  for _ in $(seq "$repeats"); do
    timed "$1" "${theirs_cmd[@]}"
    timed "$2" "${ours_cmd[@]}"
  done
}

row() {  # row OPERATION THEIRS_S OURS_S THEIRS_MIB OURS_MIB NOTE
  printf '  %-26s %9.2f %9.2f %6.2f %9s %9s  %s\n' "$1" "$2" "$3" "$(echo "$2 / $3" | bc -l)" "$4" "$5" "$6"
}

# decode_rate URL PARALLEL REQUESTS: PARALLEL clients each sending REQUESTS completions one after
# another; prints completion tokens per second over the wall time.
decode_rate() {
  local url=$1 parallel=$2 requests=$3 start end clients=()
  local body='{"model":"m","prompt":"Once upon a time","max_tokens":16,"temperature":0}'
  curl -s "$url/v1/completions" -H 'Content-Type: application/json' -d "$body" > /dev/null  # warm-up
  rm -f "$work"/tokens.*
  start=$(date +%s.%N)
  for c in $(seq "$parallel"); do
    (for _ in $(seq "$requests"); do
      curl -s "$url/v1/completions" -H 'Content-Type: application/json' -d "$body" | jq '.usage.completion_tokens'
    done > "$work/tokens.$c") &
    clients+=($!)
  done
  wait "${clients[@]}"
  end=$(date +%s.%N)
  echo "$(cat "$work"/tokens.* | awk '{ s += $1 } END { print s }') / ($end - $start)" | bc -l
}

hwm_mib() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# start_server NAME COMMAND...: starts the server (COMMAND then a free port) and waits until it
# answers; sets NAME_url and NAME_pid.
start_server() {
  local name=$1 port
  shift
  port=$(free_port)
  "$@" "$port" > "$work/$name-server.log" 2>&1 &
  printf -v "${name}_pid" '%s' "$!"
  server_pids+=("$!")
  printf -v "${name}_url" '%s' "http://127.0.0.1:$port"
  wait_ready "http://127.0.0.1:$port" "$!"
}

# served PARALLEL: the decode rate of both servers (theirs and ours, started), $repeats times
# taking turns; sets theirs_tps and ours_tps (medians) and each one's peak RSS, then stops them.
served() {
  local parallel=$1
  : > "$work/theirs.tps"
  : > "$work/ours.tps"
  for _ in $(seq "$repeats"); do
    decode_rate "$theirs_url" "$parallel" "$requests" >> "$work/theirs.tps"
    decode_rate "$ours_url" "$parallel" "$requests" >> "$work/ours.tps"
  done
  theirs_tps=$(median < "$work/theirs.tps")
  ours_tps=$(median < "$work/ours.tps")
  theirs_mib=$(hwm_mib "$theirs_pid")
  ours_mib=$(hwm_mib "$ours_pid")
  kill "$theirs_pid" "$ours_pid"
  wait "$theirs_pid" "$ours_pid" 2> /dev/null || true
}

echo "scale ladder: $threads threads, $chunks chunks of $ctx tokens, medians of $repeats runs (the plan: one); ratio = llama.cpp time / switchyard time"
for rung in "${rungs[@]}"; do
  dir="$work/$rung"
  mkdir -p "$dir"
  rm -f "$work"/*.walls "$work"/*.rss  # each rung's medians are its own
  "$sy" make-model "$rung" "$dir/f16.gguf" --f16 > "$dir/make.log"
  echo
  echo "$rung: $(sed 's/^wrote [^:]*: //' "$dir/make.log")"
  printf '  %-26s %9s %9s %6s %9s %9s  %s\n' operation "llama s" "ours s" ratio "llama MiB" "ours MiB" notes

  # Each run of ours hashes the F16 afresh, as a first quantization of a new model does.
  lq_cmd=("$tools/llama-quantize" "$dir/f16.gguf" "$dir/theirs-q4km.gguf" Q4_K_M "$threads")
  sq_cmd=(bash -c 'touch "$1" && exec "$0" quantize "$1" "$2" Q4_K_M -t "$3"' "$sy" "$dir/f16.gguf" "$dir/q4km.gguf" "$threads")
  pair lq sq
  row "quantize Q4_K_M" "$lq_s" "$sq_s" "$lq_mib" "$sq_mib" "sizes $(stat -c %s "$dir/theirs-q4km.gguf") vs $(stat -c %s "$dir/q4km.gguf") bytes; ours also hashes both files for the recipe"
  # As every later quantization of the same model (a plan's variants): the F16's digest is cached.
  timed sc "$sy" quantize "$dir/f16.gguf" "$dir/q4km.gguf" Q4_K_M -t "$threads"
  row "  (F16's digest cached)" "$lq_s" "$sc_s" "$lq_mib" "$sc_mib" "one run of ours; only the output is hashed"

  li_cmd=("$tools/llama-imatrix" -m "$dir/f16.gguf" -f "$text" -c "$ctx" --chunks "$chunks" -t "$threads" -o "$dir/theirs.imatrix.gguf")
  si_cmd=("$sy" calibrate "$dir/f16.gguf" --data "$text" -c "$ctx" --chunks "$chunks" -t "$threads" -o "$dir/ours.imatrix.gguf")
  pair li si
  row "calibrate ($chunks × $ctx tok)" "$li_s" "$si_s" "$li_mib" "$si_mib" ""

  lp=("$tools/llama-perplexity" -f "$text" -c "$ctx" -b "$ctx" --chunks "$chunks" -t "$threads")
  lp_cmd=("${lp[@]}" -m "$dir/q4km.gguf")
  sp_cmd=("$sy" eval -m "$dir/q4km.gguf" --text "$text" -c "$ctx" --chunks "$chunks" -t "$threads" --json)
  pair lp sp
  theirs_ppl=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$work/lp.log")
  ours_ppl=$(sed -n '/^{/,$p' "$work/sp.log" | jq .perplexity)
  row "eval --text (perplexity)" "$lp_s" "$sp_s" "$lp_mib" "$sp_mib" "PPL $theirs_ppl vs $ours_ppl"

  lb_cmd=("${lp[@]}" -m "$dir/f16.gguf" --kl-divergence-base "$dir/theirs.kld")
  sb_cmd=("$sy" eval -m "$dir/f16.gguf" --text "$text" -c "$ctx" --chunks "$chunks" -t "$threads" --save-base "$dir/ours.ref" --json)
  pair lb sb
  lk_cmd=("${lp[@]}" -m "$dir/q4km.gguf" --kl-divergence-base "$dir/theirs.kld" --kl-divergence)
  sk_cmd=("$sy" eval -m "$dir/q4km.gguf" --base-file "$dir/ours.ref" -t "$threads" --json)
  pair lk sk
  theirs_kld=$(sed -n 's/^Mean    KLD: *\([0-9.]*\).*/\1/p' "$work/lk.log")
  ours_kld=$(sed -n '/^{/,$p' "$work/sk.log" | jq .drift.kld.mean)
  theirs_bytes=$(stat -c %s "$dir/theirs.kld")
  ours_bytes=$(stat -c %s "$dir/ours.ref")
  row "KLD from a stored base" "$lk_s" "$sk_s" "$lk_mib" "$sk_mib" \
    "KLD $theirs_kld vs $(printf '%.6f' "$ours_kld"); base file $theirs_bytes vs $ours_bytes bytes (1/$(echo "$theirs_bytes / $ours_bytes" | bc))"
  row "  (recording the base)" "$lb_s" "$sb_s" "$lb_mib" "$sb_mib" "the F16's predictions, and its perplexity"

  for parallel in 1 4; do
    start_server theirs "$tools/llama-server" -m "$dir/q4km.gguf" -c $((256 * parallel)) -np "$parallel" -t "$threads" --port
    printf 'version: 1\nmodels:\n  - {name: m, path: %s, context: 256, parallel: %s, threads: %s}\n' "$dir/q4km.gguf" "$parallel" "$threads" > "$dir/portfolio.yaml"
    start_server ours "$sy" serve --portfolio "$dir/portfolio.yaml" --port
    served "$parallel"
    printf '  %-26s %9.1f %9.1f %6.2f %9s %9s  %s\n' "serve decode, $parallel parallel" "$theirs_tps" "$ours_tps" "$(echo "$ours_tps / $theirs_tps" | bc -l)" \
      "$theirs_mib" "$ours_mib" "tokens/s (ratio: ours / theirs), $requests requests × 16 tokens per client"
  done

  cat > "$dir/plan.yaml" << YAML
base: {name: $rung, path: f16.gguf}
variants:
  - {type: Q8_0}
  - {type: Q4_K_M}
  - {type: Q4_0, imatrix: false}
calibration: {files: [$(realpath "$text")], samples: $chunks, context: $ctx}
screen: {files: [$(realpath "$text")], chunks: 2, context: $ctx, skip_chunks: $chunks}
tasks:
  - cloze: {text: $(realpath "$text"), items: 8, skip_passages: 1500}
    name: story-cloze
speed: {prompt_tokens: 32, generate_tokens: 8, repeats: 1}
YAML
  timed pd "$sy" plan "$dir/plan.yaml" --dry-run -o "$dir/plan-out" -t "$threads"
  timed pl "$sy" plan "$dir/plan.yaml" -o "$dir/plan-out" --results "$dir/results.sqlite" -t "$threads"
  printf '  %-26s %9s %9.2f %6s %9s %9s  %s\n' "plan, 3 variants" "-" "$pl_s" "-" "-" "$pl_mib" "dry run said $(awk '$1 == "total" { print $2, $3 }' "$work/pd.log")"
  # The plan's log has a line per step, stamped with the seconds since it started; calibration,
  # variants and screen are stamped as they end, so the time between those stamps is theirs, and
  # the rest (tasks, speed, decision, report) is what remains of the wall time.
  sed -n 's/^plan: \[ *\([0-9.]*\) s\] \(calibration\|variants\|screen\):.*/\1 \2/p' "$work/pl.log" |
    awk -v total="$pl_s" '{ printf "%s %s %.1f s, ", (NR == 1 ? "    by stage:" : ""), $2, $1 - t; t = $1 }
         END { printf "tasks, speed and report %.1f s\n", total - t }'
  rm -f "$dir"/*.gguf "$dir"/plan-out/models/*.gguf
  [ "$rung" = "$upto" ] && break
done
