#!/usr/bin/env bash
# The gateway's own latency: wrk at 64 connections against a stub OpenAI server directly, then
# through `switchyard serve` with the stub as a remote backend, in one run. Prints p50/p99 of both
# and what the gateway adds (target: p50 < 0.5 ms, p99 < 2 ms), and at 64 connections the CPU
# each process spends per request (wrk, stub, gateway), which bounds the saturated rate.
# Then 64 connections paced at RATE requests/s in all (default 2000, well below what either
# side saturates at), where latency is the time a request takes rather than queueing.
# Usage: bench/serve-overhead.sh [SECONDS per run (default 10)] [RATE (default 2000)]
source "$(dirname "$0")/common.sh"
source bench/serve-lib.sh
seconds="${1:-10}"
rate="${2:-2000}"
body='{"model":"stub","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}'

start_server upstream "$stub" --port 0 --name upstream
cat > "$work/portfolio.yaml" << YAML
version: 1
models:
  - {name: stub, endpoint: "http://127.0.0.1:$upstream_port/v1"}
server: {queue_length: 256, max_streams: 256}
YAML
start_server gateway "$sy" serve --portfolio "$work/portfolio.yaml" --port 0

# At 64 connections the two cores are saturated and latency mostly measures throughput; one
# connection shows the latency the gateway adds to a single request.
hz=$(getconf CLK_TCK)
printf 'serve overhead, %ss per run, %s cores (one run, same machine)\n' "$seconds" "$(nproc)"
printf '  %-34s %9s %9s %10s %9s\n' "" "p50 ms" "p99 ms" "requests" "failures"
for connections in 64 1; do
  threads=$((connections < 2 ? 1 : 2))
  for target in direct gateway; do
    port=$upstream_port
    [ "$target" = gateway ] && port=$gateway_port
    url="http://127.0.0.1:$port/v1/chat/completions"
    wrk_run "$url" "$body" -t "$threads" -c "$connections" -d 2s  # warm-up
    stub_t0=$(cpu_ticks "$upstream_pid")
    gateway_t0=$(cpu_ticks "$gateway_pid")
    wrk_run "$url" "$body" -t "$threads" -c "$connections" -d "${seconds}s"
    # CPU per request of each process, in µs: what bounds the saturated rate on shared cores.
    n=$(wrk_requests)
    printf -v "${target}_stub_us" '%.0f' "$(echo "($(cpu_ticks "$upstream_pid") - $stub_t0) * 1000000 / $hz / $n" | bc -l)"
    printf -v "${target}_gateway_us" '%.0f' "$(echo "($(cpu_ticks "$gateway_pid") - $gateway_t0) * 1000000 / $hz / $n" | bc -l)"
    printf -v "${target}_wrk_us" '%.0f' "$([ -s "$work/wrk.cpu" ] && echo "($(tr ' ' + < "$work/wrk.cpu")) * 1000000 / $n" | bc -l || echo 0)"
    printf -v "${target}_p50" '%s' "$(wrk_ms 50%)"
    printf -v "${target}_p99" '%s' "$(wrk_ms 99%)"
    label="stub directly"
    [ "$target" = gateway ] && label="through the gateway"
    printf '  %-34s %9s %9s %10s %9s\n' "$label, $connections conn" "$(wrk_ms 50%)" "$(wrk_ms 99%)" "$(wrk_requests)" "$(wrk_failures)"
  done
  # shellcheck disable=SC2154 # set through printf -v above
  printf '  %-34s %9.3f %9.3f\n' "added by the gateway, $connections conn" "$(echo "$gateway_p50 - $direct_p50" | bc -l)" "$(echo "$gateway_p99 - $direct_p99" | bc -l)"
  if [ "$connections" = 64 ]; then
    # With every process on the same cores, the saturated rate through the gateway over the direct
    # one is (wrk + stub) / (wrk + stub behind the gateway + gateway), per request.
    printf '  CPU per request, 64 conn: wrk %s µs, stub %s µs directly; through the gateway wrk %s, stub %s, gateway %s µs\n' \
      "$direct_wrk_us" "$direct_stub_us" "$gateway_wrk_us" "$gateway_stub_us" "$gateway_gateway_us"
    printf '  so a throughput ratio of %.2f; a gateway costing what the stub does would give %.2f, and 0.5 needs one of at most %.0f µs\n' \
      "$(echo "($direct_wrk_us + $direct_stub_us) / ($gateway_wrk_us + $gateway_stub_us + $gateway_gateway_us)" | bc -l)" \
      "$(echo "($direct_wrk_us + $direct_stub_us) / ($gateway_wrk_us + $gateway_stub_us + $direct_stub_us)" | bc -l)" \
      "$(echo "2 * ($direct_wrk_us + $direct_stub_us) - $gateway_wrk_us - $gateway_stub_us" | bc -l)"
  fi
done

# Paced: the same 64 connections, each sending every 64/RATE seconds, for about SECONDS.
requests=$((rate * seconds))
for target in direct gateway; do
  port=$upstream_port
  [ "$target" = gateway ] && port=$gateway_port
  drive "http://127.0.0.1:$port" /v1/chat/completions "$body" "$requests" 64 "$rate"
  read -r p50 p99 < <(echo "$drive_line" | awk '{ print $10, $12 }')
  printf -v "${target}_p50" '%s' "$p50"
  printf -v "${target}_p99" '%s' "$p99"
  label="stub directly"
  [ "$target" = gateway ] && label="through the gateway"
  printf '  %-34s %9s %9s %10s %9s\n' "$label, 64 conn at $rate/s" "$p50" "$p99" "$(echo "$drive_line" | awk '{ print $2 }')" "$drive_failures"
done
printf '  %-34s %9.3f %9.3f\n' "added by the gateway, 64 conn paced" "$(echo "$gateway_p50 - $direct_p50" | bc -l)" "$(echo "$gateway_p99 - $direct_p99" | bc -l)"
