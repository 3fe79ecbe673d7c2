#!/usr/bin/env bash
# Plan workers (docs/scale-out.md): one plan run three times, each from an empty results store:
# here (-t 1), on one llama.cpp rpc-server worker, and on two (one thread each, on loopback).
# Prints each run's wall time and its ratio against the run here, each worker's jobs and busy
# seconds, and whether decision.json's numbers equal the run here: every candidate's suites and
# drift, the classes it was not run for, the assessments and the recommendation. Speed and cost
# are timings of a shared machine and are left out.
# With --kill, the first of the two workers is killed as it starts its first candidate, and the
# plan must still finish with the same numbers.
#
# Usage: bench/plan-workers.sh [PLAN] [--kill]    (default PLAN: the bundled example)
source "$(dirname "$0")/common.sh"
plan=examples/tinystories/plan.yaml
kill_one=0
for a in "$@"; do
  case "$a" in
    --kill) kill_one=1 ;;
    -*) echo "usage: bench/plan-workers.sh [PLAN] [--kill]" >&2; exit 1 ;;
    *) plan="$a" ;;
  esac
done
rpc="$tools/ggml-rpc-server"
[ -x "$rpc" ] || { echo "bench: $rpc not built (SWITCHYARD_RPC=ON and the reference_tools target)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start_worker() {  # prints "PID PORT"
  local port
  port=$(free_port)
  "$rpc" -H 127.0.0.1 -p "$port" -t 1 > "$work/rpc-$port.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null && break; sleep 0.1; done
  echo "$pid $port"
}
# What the decision rests on, without paths, timings and the search's own counts: costs come from
# timings of a shared machine, so the texts that quote them (skip reasons, the choice's reason)
# are left out, and what they decided (which classes skipped a candidate; the choice) kept.
numbers() {
  jq -S '{assessments, recommendation: [.recommendation[] | {class, action, model, backup, rule, flagged}],
          candidates: [.candidates[] | {name, suites, drift, skipped, not_run: ((.not_run // {}) | keys)}]}' "$1"
}
run_plan() {  # NAME [--workers LIST]: prints its wall seconds
  local name=$1
  shift
  local start end
  start=$(date +%s.%N)
  "$sy" plan "$plan" -o "$work/$name" --results "$work/$name.sqlite" -t 1 "$@" > "$work/$name.out" 2> "$work/$name.err" ||
    { echo "bench: plan $name failed:" >&2; tail -5 "$work/$name.err" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

echo "plan: $plan"
local_s=$(run_plan here)
printf '%-34s %8.1f s\n' "here (-t 1)" "$local_s"

read -r p1 port1 < <(start_worker)
pids+=("$p1")
one_s=$(run_plan one --workers "rpc://127.0.0.1:$port1")

read -r p2 port2 < <(start_worker)
pids+=("$p2")
if ((kill_one)); then
  (
    for _ in $(seq 6000); do
      grep -q "workers: 127.0.0.1:$port1 measures" "$work/two.err" 2> /dev/null && { kill -9 "$p1"; echo "killed the worker at :$port1" >&2; exit 0; }
      sleep 0.05
    done
  ) &
fi
two_s=$(run_plan two --workers "rpc://127.0.0.1:$port1,rpc://127.0.0.1:$port2")
wait

for name in one two; do
  runs=$(echo "$name" | sed 's/one/1 worker/; s/two/2 workers/')
  secs=$([ "$name" = one ] && echo "$one_s" || echo "$two_s")
  printf '%-34s %8.1f s   here / this: %.2f\n' "$runs" "$secs" "$(echo "$local_s / $secs" | bc -l)"
  jq -r '.search | "    \(.suite_runs) suite runs, \(.suite_runs_on_workers) on workers, \(.worker_runs_not_needed) more measured ahead and not needed",
                   (.workers[] | "    \(.endpoint): \(.jobs) jobs, \(.busy_seconds | floor) s busy, lost \(.lost), \(if .up then "up" else "down" end) at the end")' \
    "$work/$name/decision.json"
  if diff <(numbers "$work/here/decision.json") <(numbers "$work/$name/decision.json") > "$work/$name.diff"; then
    echo "    decision.json numbers: the same as here"
  else
    echo "    decision.json numbers: DIFFER from here:"
    head -20 "$work/$name.diff"
  fi
done
echo "(2 cores: the run here uses one thread; each worker one. The screen's drift and the speed passes run on the plan's machine in every run.)"
