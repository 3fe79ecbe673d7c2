#!/usr/bin/env bash
# Three llama-server replicas (built from the engine's own source) behind `switchyard serve` as one
# model: REQUESTS completions (default 10,000) at 64 concurrency through the gateway; one replica
# is killed a third of the way in and restarted on its port at two thirds. Prints the failures,
# each replica's share of the answers while all three were up, and how long the restarted one took
# to come back into rotation (health interval INTERVAL_MS, default 1000).
# Usage: bench/serve-replicas.sh [REQUESTS] [INTERVAL_MS]
source "$(dirname "$0")/common.sh"
source bench/serve-lib.sh
requests="${1:-10000}"
interval="${2:-1000}"
server="$tools/llama-server"
model="$data/models/stories260K-f32.gguf"
[ -x "$server" ] || { echo "bench: no llama-server in $tools" >&2; exit 1; }

# start_replica I PORT: llama-server on PORT, ready when its /health answers 200. Its HTTP threads
# (--threads-http, default slots + 4) each stay with one kept-alive connection, and connections
# beyond them wait unserved: they must cover the gateway's 64 (docs/scale-out.md).
start_replica() {
  "$server" -m "$model" --host 127.0.0.1 --port "$2" -c 2048 -np 4 -t 1 --threads-http 80 --no-webui > "$work/replica$1.log" 2>&1 &
  printf -v "replica$1_pid" '%s' "$!"
  pids+=("$!")
  for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/health")" = 200 ] && return
    sleep 0.1
  done
  echo "bench: llama-server $1 did not start: $(tail -3 "$work/replica$1.log")" >&2
  exit 1
}
ports=()
next=18300
for i in 0 1 2; do
  ports+=("$(free_port "$next")")
  next=$((ports[i] + 1))
  start_replica "$i" "${ports[i]}"
done
cat > "$work/portfolio.yaml" << YAML
version: 1
models:
  - name: pool
    replicas:
      - {endpoint: "http://127.0.0.1:${ports[0]}/v1"}
      - {endpoint: "http://127.0.0.1:${ports[1]}/v1"}
      - {endpoint: "http://127.0.0.1:${ports[2]}/v1"}
    health: {interval_ms: $interval, timeout_ms: 500}
server: {queue_length: 256, max_streams: 256}
YAML
start_server gateway "$sy" serve --portfolio "$work/portfolio.yaml" --port 0
stats() { curl -s "http://127.0.0.1:$gateway_port/stats"; }
answered() { stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["models"].get("pool",{}).get("requests",0))'; }
shares() { stats | python3 -c 'import json,sys; print(" ".join(str(r["requests"]) for r in json.load(sys.stdin)["replicas"]))'; }
# The restarted replica's state from /metrics with grep: a python start per poll would add tens of
# milliseconds to the time back in rotation it measures.
healthy() { curl -s "http://127.0.0.1:$gateway_port/metrics" | grep -q "^switchyard_replica_healthy{model=\"pool\",replica=\"http://127.0.0.1:${ports[1]}/v1\"} 1" && echo True; }

body='{"model":"pool","prompt":"Once upon a time","max_tokens":8,"temperature":0}'
"$driver" "http://127.0.0.1:$gateway_port" /v1/completions "$body" "$requests" 64 > "$work/drive.txt" 2> "$work/drive.err" &
driver_pid=$!
until [ "$(answered)" -ge $((requests / 3)) ]; do sleep 0.05; done
read -r -a phase1 <<< "$(shares)"
# shellcheck disable=SC2154 # set through printf -v in start_replica
kill "$replica1_pid"
until [ "$(answered)" -ge $((2 * requests / 3)) ]; do sleep 0.05; done
restarted=$(date +%s%N)
start_replica 1 "${ports[1]}"
ready=$(date +%s%N)
until [ "$(healthy)" = True ]; do sleep 0.01; done
back=$(date +%s%N)
wait "$driver_pid" || true
read -r -a final <<< "$(shares)"

printf 'replicas: %s requests at 64 concurrency through the gateway to 3 llama-server replicas (%s cores)\n' "$requests" "$(nproc)"
printf '  client side: %s\n' "$(cat "$work/drive.txt")"
[ -s "$work/drive.err" ] && sed 's/^/  /' "$work/drive.err" | head -5
retried=$(curl -s "http://127.0.0.1:$gateway_port/metrics" | awk '/^switchyard_replica_failures_total/ { n += $2 } END { print n + 0 }')
printf '  attempts that met a dead replica and were retried on another: %s\n' "$retried"
mean=$(((phase1[0] + phase1[1] + phase1[2]) / 3))
printf '  first third, all up: answers per replica %s %s %s (mean %s; largest deviation %s%%)\n' "${phase1[0]}" "${phase1[1]}" "${phase1[2]}" "$mean" \
  "$(python3 -c "m=$mean; print(round(100*max(abs(x-m) for x in [${phase1[0]},${phase1[1]},${phase1[2]}])/m, 1))")"
printf '  whole run: answers per replica %s %s %s\n' "${final[0]}" "${final[1]}" "${final[2]}"
printf '  restarted replica: llama-server ready after %s ms, back in rotation %s ms later (interval %s ms)\n' \
  $(((ready - restarted) / 1000000)) $(((back - ready) / 1000000)) "$interval"
curl -s "http://127.0.0.1:$gateway_port/metrics" | grep '^switchyard_replica_' | sed 's/^/  /'
