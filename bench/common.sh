# Shared by the bench scripts: paths, the reference tools, and a repeatable timer.
# shellcheck shell=bash
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data="${SWITCHYARD_DATA_DIR:-../shared}"
sy=build/switchyard
[ -x "$sy" ] || { echo "bench: build first (scripts/setup.sh)" >&2; exit 1; }
tools=$(sed -n 's/^SWITCHYARD_REFERENCE_TOOLS_DIR:INTERNAL=//p' build/CMakeCache.txt)
# llama.cpp's own tools, the references every bench compares against: built on first use.
cmake --build build --target reference_tools > /dev/null || { echo "bench: building the reference tools failed (cmake --build build --target reference_tools)" >&2; exit 1; }
threads="${BENCH_THREADS:-$(nproc)}"
repeats="${BENCH_REPEATS:-3}"

# Median wall-clock seconds of a command over $repeats runs (its output discarded).
median_seconds() {
  local times=()
  for _ in $(seq "$repeats"); do
    local start end
    start=$(date +%s.%N)
    "$@" > /dev/null 2>&1 || { echo "bench: command failed: $*" >&2; exit 1; }
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc -l)")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# wait_ready URL PID [LOG]: until URL/health answers 200 (2 minutes at most) or the process dies
# (then the end of LOG, where given, says why).
wait_ready() {
  for _ in $(seq 1200); do
    curl -sf "$1/health" > /dev/null 2>&1 && return 0
    if ! kill -0 "$2" 2> /dev/null; then
      echo "bench: the server at $1 exited" >&2
      [ -n "${3:-}" ] && tail -5 "$3" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "bench: the server at $1 did not come up" >&2
  exit 1
}

# A loopback port nothing answers on, from START (default: a random one above 20000) upwards.
free_port() {
  local p="${1:-$(shuf -i 20000-50000 -n 1)}"
  while (exec 3<> "/dev/tcp/127.0.0.1/$p") 2> /dev/null; do p=$((p + 1)); done
  echo "$p"
}
