#!/usr/bin/env bash
# Continuous batching in process against llama-server built from the same llama.cpp source: the
# same model, prompts (TinyStories lines), concurrency (= slots = --parallel), greedy decoding,
# max tokens, threads, batch size and per-slot context (--no-kv-unified, as the engine does), no
# prompt cache. Prints aggregate generated tokens/s for both, their ratio (>= 1.0 wanted) and
# how many completions came out identical (they should all: the same work on both sides).
# Both sides count the tokens the model sampled, the end-of-generation token included (what
# llama-server reports as tokens_predicted).
# ggml runs its threads with OpenMP, which spin-waits at every barrier: where other work holds
# the cores (a shared machine), a decode with more threads than free cores waits on the OS
# scheduler, and both sides' figures swing several-fold from run to run. BENCH_THREADS=1 gives
# stable figures there.
# Usage: bench/batching.sh [MODEL...]   env: BENCH_REQUESTS (32) BENCH_CONCURRENCY (4)
#        BENCH_MAX_TOKENS (64) BENCH_CONTEXT (256) BENCH_THREADS BENCH_REPEATS
source "$(dirname "$0")/common.sh"
server="$tools/llama-server"
[ -x "$server" ] || { echo "bench: no llama-server in '$tools' (add it to SWITCHYARD_REFERENCE_TOOLS and reconfigure)" >&2; exit 1; }
[ -x build/switchyard_batching_bench ] || { echo "bench: build the target switchyard_batching_bench first" >&2; exit 1; }
requests="${BENCH_REQUESTS:-32}"
concurrency="${BENCH_CONCURRENCY:-4}"
max_tokens="${BENCH_MAX_TOKENS:-64}"
context="${BENCH_CONTEXT:-256}"
port=$((20000 + RANDOM % 20000))
[ $# -gt 0 ] || set -- "$data/models/babyllama-0.9M-f32.gguf" "$data/models/stories260K-f32.gguf"

log=$(mktemp)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -f "$log"' EXIT
for model in "$@"; do
  # llama-server caps a slot at the context the model was trained for; the batcher is given the same.
  declared=$("$sy" inspect "$model" --json | jq .context_length)
  ctx=$(( context < declared ? context : declared ))
  echo "== $(basename "$model")  ($requests requests, concurrency $concurrency, $max_tokens tokens, context $ctx per slot, $threads threads)"
  "$server" -m "$model" --host 127.0.0.1 --port "$port" --parallel "$concurrency" -c $((ctx * concurrency)) \
    -t "$threads" -tb "$threads" -b 512 -ub 512 --no-kv-unified --no-webui > "$log" 2>&1 &
  pid=$!
  wait_ready "http://127.0.0.1:$port" "$pid" "$log"
  build/switchyard_batching_bench --model "$model" --prompts "$data/data/tinystories-valid-head.txt" --server "http://127.0.0.1:$port" \
    --requests "$requests" --concurrency "$concurrency" --max-tokens "$max_tokens" --context "$ctx" --threads "$threads" --repeats "$repeats"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=""
done
