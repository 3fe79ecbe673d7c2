#!/usr/bin/env bash
# What capture costs a request: two gateways in front of the same stub OpenAI server, one route
# each, one capturing every answer (sample 1) and one not, measured alternately in one run.
# Prints p50/p99 for both and the ratio on/off, saturated (64 connections, wrk) and paced
# (64 connections at RATE requests/s), then how many items were stored and dropped.
# Usage: bench/serve-capture.sh [SECONDS per run (default 10)] [RATE (default 2000)]
source "$(dirname "$0")/common.sh"
source bench/serve-lib.sh
seconds="${1:-10}"
rate="${2:-2000}"
body='{"model":"main","messages":[{"role":"user","content":"Once upon a time, mail ada@example.com"}],"max_tokens":8}'

start_server upstream "$stub" --port 0 --name upstream
for mode in off on; do
  capture=""
  [ "$mode" = on ] && capture=", capture: {sample: 1}"
  mkdir -p "$work/$mode"
  cat > "$work/$mode/portfolio.yaml" << YAML
models:
  - {name: stub, endpoint: "http://127.0.0.1:$upstream_port/v1"}
routes:
  - {name: main, model: stub$capture}
server: {queue_length: 256, max_streams: 256}
YAML
  start_server "gateway_$mode" "$sy" serve --portfolio "$work/$mode/portfolio.yaml" --port 0
done

printf 'capture overhead, %ss per run, %s cores (one run, same machine)\n' "$seconds" "$(nproc)"
printf '  %-30s %9s %9s %10s %9s\n' "" "p50 ms" "p99 ms" "requests" "failures"
for mode in off on; do
  port_var="gateway_${mode}_port"
  url="http://127.0.0.1:${!port_var}/v1/chat/completions"
  wrk_run "$url" "$body" -t 2 -c 64 -d 2s  # warm-up
  wrk_run "$url" "$body" -t 2 -c 64 -d "${seconds}s"
  printf -v "sat_${mode}_p50" '%s' "$(wrk_ms 50%)"
  printf -v "sat_${mode}_p99" '%s' "$(wrk_ms 99%)"
  printf -v "sat_${mode}_n" '%s' "$(wrk_requests)"
  printf '  %-30s %9s %9s %10s %9s\n' "capture $mode, 64 conn" "$(wrk_ms 50%)" "$(wrk_ms 99%)" "$(wrk_requests)" "$(wrk_failures)"
done
requests=$((rate * seconds))
for mode in off on; do
  port_var="gateway_${mode}_port"
  drive "http://127.0.0.1:${!port_var}" /v1/chat/completions "$body" "$requests" 64 "$rate"
  read -r p50 p99 < <(echo "$drive_line" | awk '{ print $10, $12 }')
  printf -v "paced_${mode}_p50" '%s' "$p50"
  printf -v "paced_${mode}_p99" '%s' "$p99"
  printf '  %-30s %9s %9s %10s %9s\n' "capture $mode, 64 conn at $rate/s" "$p50" "$p99" "$(echo "$drive_line" | awk '{ print $2 }')" "$drive_failures"
done
# shellcheck disable=SC2154 # set through printf -v above
{
  printf '  ratio on/off, saturated:  p50 %.2f  p99 %.2f  throughput %.2f\n' "$(echo "$sat_on_p50 / $sat_off_p50" | bc -l)" \
    "$(echo "$sat_on_p99 / $sat_off_p99" | bc -l)" "$(echo "$sat_on_n / $sat_off_n" | bc -l)"
  printf '  ratio on/off, paced:      p50 %.2f  p99 %.2f\n' "$(echo "$paced_on_p50 / $paced_off_p50" | bc -l)" "$(echo "$paced_on_p99 / $paced_off_p99" | bc -l)"
}
stats=$(curl -s "http://127.0.0.1:$gateway_on_port/metrics")
printf '  captured: %s stored, %s dropped (queue full)\n' "$(echo "$stats" | awk '/^switchyard_capture_items_total/ { print $2 }')" \
  "$(echo "$stats" | awk '/^switchyard_capture_dropped_total/ { print $2 }')"
