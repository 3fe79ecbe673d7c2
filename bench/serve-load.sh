#!/usr/bin/env bash
# serve under load: 10,000 requests at 64 concurrency on an in-process model with zero failures;
# gateway memory (RSS) over a bounded soak; and a fault run where a remote backend is killed
# mid-run and whole (non-streamed) requests still succeed through fallback.
# Usage: bench/serve-load.sh [REQUESTS (default 10000)] [SOAK_ROUNDS (default 5)]
source "$(dirname "$0")/common.sh"
source bench/serve-lib.sh
requests="${1:-10000}"
rounds="${2:-5}"
body='{"prompt":"Once upon a time","max_tokens":4,"temperature":0}'
status=0

cat > "$work/local.yaml" << YAML
version: 1
models:
  - {name: stories, path: $(realpath "$data/models/stories260K-f32.gguf"), context: 256, parallel: 8, threads: 1}
server: {queue_length: 256, max_streams: 256}
YAML
start_server local "$sy" serve --portfolio "$work/local.yaml" --port 0
base="http://127.0.0.1:$local_port"
rss_start=$(rss_mib "$local_pid")
drive "$base" /v1/completions "$body" "$requests" 64
echo "in-process load, 64 concurrent: $drive_line"
[ "$drive_failures" -eq 0 ] || status=1

echo "soak, $rounds rounds of 2000 requests (gateway RSS: $rss_start MiB at start, $(rss_mib "$local_pid") MiB after the load)"
for round in $(seq "$rounds"); do
  drive "$base" /v1/completions "$body" 2000 64
  echo "  round $round: $drive_line, RSS $(rss_mib "$local_pid") MiB"
  [ "$drive_failures" -eq 0 ] || status=1
done

# Fault run: the route's remote model dies a second into the run; its fallback takes over.
start_server primary "$stub" --port 0 --name primary
start_server backup "$stub" --port 0 --name backup
cat > "$work/remote.yaml" << YAML
version: 1
models:
  - {name: primary, endpoint: "http://127.0.0.1:$primary_port/v1"}
  - {name: backup, endpoint: "http://127.0.0.1:$backup_port/v1"}
routes:
  - {name: main, model: primary, fallback: [backup]}
server: {queue_length: 256, max_streams: 256, cooldown_s: 5}
YAML
start_server gateway "$sy" serve --portfolio "$work/remote.yaml" --port 0
(sleep 1 && kill -9 "$primary_pid") &
killer=$!
drive "http://127.0.0.1:$gateway_port" /v1/chat/completions '{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4}' "$((requests * 3))" 64
wait "$killer"
metrics=$(curl -s "http://127.0.0.1:$gateway_port/metrics")
count() { echo "$metrics" | awk -v s="$1" '$1 == s { print $2 }'; }
echo "fault run (primary killed after 1 s), 64 concurrent: $drive_line"
echo "  answered by primary $(count 'switchyard_model_requests_total{model="primary"}'), by backup $(count 'switchyard_model_requests_total{model="backup"}');" \
  "fallbacks $(count 'switchyard_fallbacks_total{route="main"}')"
[ "$drive_failures" -eq 0 ] || status=1
exit "$status"
