#!/usr/bin/env bash
# Fuzzes GGUF inspection (the path every model file goes through) with libFuzzer + ASan for a
# bounded time and prints executions and crashes. Usage: bench/fuzz-gguf.sh [SECONDS (default 120)]
# Needs clang and its runtime (Debian: clang, libclang-rt-dev); builds into build-fuzz/, with an
# instrumented engine cached beside the normal one.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-120}"
data="${SWITCHYARD_DATA_DIR:-../shared}"
command -v clang++ > /dev/null || { echo "fuzz: clang++ is needed (apt-get install clang libclang-rt-dev)" >&2; exit 1; }

flags="-fsanitize=fuzzer-no-link,address -fno-omit-frame-pointer -g"
if [ ! -f build-fuzz/CMakeCache.txt ]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSWITCHYARD_FUZZ=ON -DSWITCHYARD_BUILD_TESTS=OFF -DSWITCHYARD_USE_INSTALLED_LLAMA=OFF -DSWITCHYARD_REFERENCE_TOOLS= \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags"
fi
cmake --build build-fuzz --target fuzz_gguf --parallel "$(nproc)"

# Seeds: the real models, whole and cut after their metadata, so mutations start from valid files.
corpus=build-fuzz/corpus
mkdir -p "$corpus"
for m in "$data"/models/*.gguf; do
  name=$(basename "$m" .gguf)
  cp "$m" "$corpus/$name"
  head -c 16384 "$m" > "$corpus/$name-head"
done

log=build-fuzz/fuzz.log
set +e
ASAN_OPTIONS=detect_leaks=1 build-fuzz/fuzz_gguf "$corpus" -max_total_time="$seconds" -max_len=2000000 \
  -rss_limit_mb=2048 -timeout=10 -artifact_prefix=build-fuzz/ -print_final_stats=1 > "$log" 2>&1
status=$?
set -e
execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo 0)
crashes=$(find build-fuzz -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'oom-*' -o -maxdepth 1 -name 'timeout-*' | wc -l)
echo "fuzz_gguf: ${seconds}s, ${execs} executions, ${crashes} crashing inputs (exit ${status}); log: $log"
[ "$status" -eq 0 ] && [ "$crashes" -eq 0 ]
