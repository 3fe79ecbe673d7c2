#!/usr/bin/env bash
# The gateway under attack. A well-behaved client (64 connections paced at RATE requests/s in
# all, through `switchyard serve` to a stub backend) and a /health probe are measured alone, then
# again while attackers hold IDLE idle connections (default 10,000), 1,000 slow-loris senders
# (a header byte every second) and post 500,000-deep JSON bodies in a loop. Prints both runs,
# the ratio of the client's p50/p99 under attack to alone, and the slowest /health answer.
# With --on-demand the client asks an in-process model loaded on demand (stories260K) under a
# memory budget that holds one model at a time, and a second client asks another (babyllama) once
# a second, so the models swap throughout: its failures, loads and the peak resident bytes are
# printed too. Needs python3 for the attackers.
# Usage: bench/serve-hostile.sh [--on-demand] [REQUESTS (default 20000)] [RATE (default 2000)] [IDLE]
source "$(dirname "$0")/common.sh"
source bench/serve-lib.sh
on_demand=no
if [ "${1:-}" = --on-demand ]; then
  on_demand=yes
  shift
fi
requests="${1:-20000}"
rate="${2:-2000}"
idle="${3:-10000}"
command -v python3 > /dev/null || { echo "bench: needs python3 for the attackers" >&2; exit 1; }
body='{"model":"stub","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}'
ulimit -n "$(ulimit -Hn)"

start_server upstream "$stub" --port 0 --name upstream
cat > "$work/portfolio.yaml" << YAML
version: 1
models:
  - {name: stub, endpoint: "http://127.0.0.1:$upstream_port/v1"}
server: {queue_length: 256, max_streams: 256, max_body_bytes: 2097152, read_timeout_ms: 30000}
YAML
if [ "$on_demand" = yes ]; then
  # Each model's load is bounded by about 75 MiB at this context (/stats bound_bytes): 100 MiB
  # holds one, not one beside the other's load. The queue holds every client connection.
  body='{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}'
  sed -i '$d' "$work/portfolio.yaml"
  for m in stories:stories260K-f32 baby:babyllama-0.9M-f32; do
    echo "  - {name: ${m%%:*}, path: $(realpath "$data/models/${m#*:}.gguf"), context: 2048, parallel: 4, threads: 1, load: on_demand}"
  done >> "$work/portfolio.yaml"
  echo "server: {queue_length: 256, max_streams: 256, max_body_bytes: 2097152, read_timeout_ms: 30000, memory_budget: 100MiB, load_queue: 256, min_resident_s: 1}" >> "$work/portfolio.yaml"
fi
start_server gateway "$sy" serve --portfolio "$work/portfolio.yaml" --port 0

# Probes /health every 20 ms until killed; one latency in ms per line.
probe() {
  while :; do
    curl -s -o /dev/null -w '%{time_total}\n' --max-time 10 "http://127.0.0.1:$gateway_port/health" | awk '{ printf "%.2f\n", $1 * 1000 }'
    sleep 0.02
  done
}

cat > "$work/attack.py" << 'PY'
import socket, sys, time, threading
port, idle = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(idle):
    try: held.append(socket.create_connection(("127.0.0.1", port)))
    except OSError: break
slow = []
for _ in range(1000):
    try:
        s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: "); slow.append(s)
    except OSError: break
print(f"attack: {len(held)} idle, {len(slow)} slow", flush=True)
deep = b"[" * 500000 + b"]" * 500000
request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " + str(len(deep)).encode() + b"\r\n\r\n" + deep
answers = {}
def deep_loop():
    while True:
        try:
            c = socket.create_connection(("127.0.0.1", port)); c.sendall(request); status = c.recv(64)[9:12].decode(); c.close()
            answers[status] = answers.get(status, 0) + 1
        except OSError as e:
            answers[type(e).__name__] = answers.get(type(e).__name__, 0) + 1
threading.Thread(target=deep_loop, daemon=True).start()
while True:
    time.sleep(1)
    for s in slow:
        try: s.send(b"x")
        except OSError: pass
    print("attack: deep-JSON answers", answers, flush=True)
PY

# The second client of --on-demand: asks babyllama once a second until killed; one status a line.
switcher() {
  while :; do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 130 "http://127.0.0.1:$gateway_port/v1/completions" \
      -H 'Content-Type: application/json' -d '{"model":"baby","prompt":"Once upon a time","max_tokens":4}'
    sleep 1
  done
}

printf 'serve under attack: %s requests at %s/s over 64 connections, %s cores (one run each, same machine)\n' "$requests" "$rate" "$(nproc)"
printf '  %-28s %9s %9s %9s %12s\n' "" "p50 ms" "p99 ms" "failures" "health max ms"
for phase in alone attacked; do
  if [ "$phase" = attacked ]; then
    python3 "$work/attack.py" "$gateway_port" "$idle" > "$work/attack.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 600); do grep -q "attack: .* idle" "$work/attack.log" && break; sleep 0.1; done
  fi
  probe > "$work/health-$phase.txt" &
  probe_pid=$!
  if [ "$on_demand" = yes ]; then
    switcher > "$work/switch-$phase.txt" &
    switcher_pid=$!
  fi
  drive "http://127.0.0.1:$gateway_port" /v1/chat/completions "$body" "$requests" 64 "$rate"
  kill "$probe_pid" 2> /dev/null || true
  if [ "$on_demand" = yes ]; then
    kill "$switcher_pid" 2> /dev/null || true
    echo "    babyllama once a second: $(grep -c . "$work/switch-$phase.txt") requests, $(grep -vc '^200$' "$work/switch-$phase.txt") not 200"
  fi
  read -r p50 p99 < <(echo "$drive_line" | awk '{ print $10, $12 }')
  printf -v "${phase}_p50" '%s' "$p50"
  printf -v "${phase}_p99" '%s' "$p99"
  health_max=$(sort -n "$work/health-$phase.txt" | tail -1)
  printf '  %-28s %9s %9s %9s %12s\n' "$phase" "$p50" "$p99" "$drive_failures" "$health_max"
done
# shellcheck disable=SC2154 # set through printf -v above
printf '  %-28s %9.2f %9.2f\n' "ratio attacked / alone" "$(echo "$attacked_p50 / $alone_p50" | bc -l)" "$(echo "$attacked_p99 / $alone_p99" | bc -l)"
grep "idle" "$work/attack.log" | head -1 | sed 's/^/  /'
tail -1 "$work/attack.log" | sed 's/^/  /'
curl -s "http://127.0.0.1:$gateway_port/metrics" | grep '^switchyard_http_' | sed 's/^/  /'
if [ "$on_demand" = yes ]; then
  curl -s "http://127.0.0.1:$gateway_port/metrics" | grep -E '^switchyard_(model_(loads|unloads)_total|memory_budget_bytes)' | sed 's/^/  /'
  curl -s "http://127.0.0.1:$gateway_port/stats" | python3 -c "import json,sys; r=json.load(sys.stdin)['residency']; print(f\"  peak resident bytes {r['peak_resident_bytes']} of a budget of {r['memory_budget_bytes']}\")"
  echo "  gateway is up: $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gateway_port/health"); peak RSS $(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$gateway_pid/status") MiB"
fi
