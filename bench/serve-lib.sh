# Shared by the serve benchmarks: start servers on free ports, drive them with wrk, read RSS.
# shellcheck shell=bash
stub=build/switchyard_stub_openai
driver=build/switchyard_load_driver
[ -x "$stub" ] && [ -x "$driver" ] || { echo "bench: build the tests first (scripts/setup.sh builds build/switchyard_stub_openai)" >&2; exit 1; }
command -v wrk > /dev/null || { echo "bench: needs wrk (apt-get install wrk)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; rm -rf "$work"' EXIT

# start_server NAME COMMAND...: runs it in the background; sets NAME_pid and NAME_port.
start_server() {
  local name=$1
  shift
  "$@" > "$work/$name.out" 2> "$work/$name.err" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 600); do
    if grep -q "listening on" "$work/$name.out" 2> /dev/null; then break; fi
    kill -0 "$pid" 2> /dev/null || { echo "bench: $name did not start: $(cat "$work/$name.err")" >&2; exit 1; }
    sleep 0.1
  done
  printf -v "${name}_pid" '%s' "$pid"
  printf -v "${name}_port" '%s' "$(grep -o 'listening on http://[^ ]*' "$work/$name.out" | sed 's/.*://')"
}

# The request wrk sends.
cat > "$work/post.lua" << 'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("WRK_BODY")
LUA

# wrk_run URL BODY ARGS...: wrk with --latency, its report in $work/wrk.txt and its CPU seconds
# (user system) in $work/wrk.cpu where /usr/bin/time is there.
wrk_run() {
  local url=$1 body=$2 timed=()
  shift 2
  [ -x /usr/bin/time ] && timed=(/usr/bin/time -f "%U %S" -o "$work/wrk.cpu")
  WRK_BODY="$body" "${timed[@]}" wrk --latency -s "$work/post.lua" "$@" "$url" > "$work/wrk.txt" 2>&1
}
# CPU clock ticks a process has used so far (user + system).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Latency percentile from the last wrk report, in milliseconds: wrk_ms 50%
wrk_ms() {
  awk -v p="$1" '$1 == p { v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[a-z]+$/, "", v);
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1; printf "%.3f", v * f }' "$work/wrk.txt"
}
wrk_requests() { awk '/requests in/ { print $1 }' "$work/wrk.txt"; }
wrk_failures() {
  awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$work/wrk.txt"
}
# drive URL PATH BODY REQUESTS CONCURRENCY: exactly REQUESTS POSTs; sets drive_line (the driver's
# summary) and drive_failures.
drive() {
  drive_line=$("$driver" "$@" 2> "$work/driver.err" || true)
  drive_failures=$(echo "$drive_line" | awk '{ print $4 }')
  [ -n "$drive_failures" ] || { echo "bench: the load driver failed: $(cat "$work/driver.err")" >&2; exit 1; }
  if [ "$drive_failures" -ne 0 ]; then echo "  $(cat "$work/driver.err")"; fi
}
rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
