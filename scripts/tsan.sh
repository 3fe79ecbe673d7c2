#!/usr/bin/env bash
# Builds switchyard with ThreadSanitizer into build-tsan/ and runs the tests whose code is
# concurrent: serve (gateway, HTTP edge, hostile input, loading on demand), the HTTP client, the
# continuous batcher, shadows, plan workers.
# Any data race TSAN sees fails the test it happens in (halt_on_error), servers included.
# Usage: scripts/tsan.sh [extra ctest -R regex]   (run scripts/setup.sh first; a TSAN build takes
# about twice a normal one)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc 2> /dev/null || echo 2)"
mkdir -p build-tsan
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWITCHYARD_SANITIZE=thread > build-tsan/configure.log 2>&1 ||
  { tail -20 build-tsan/configure.log; exit 1; }
echo "tsan: building into build-tsan/ (log: build-tsan/build.log)"
cmake --build build-tsan --parallel "$jobs" --target switchyard switchyard_tests switchyard_stub_openai > build-tsan/build.log 2>&1 ||
  { grep -m 20 -E "error|Error" build-tsan/build.log; echo "tsan: build failed, see build-tsan/build.log" >&2; exit 1; }
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp ${TSAN_OPTIONS:-}"
# The process-RSS test is left out: under TSAN a process's resident memory holds TSAN's shadow
# memory too (a 16 MB model loads as 119 MB), so no budget in bytes can be checked there.
ctest --test-dir build-tsan --output-on-failure --parallel "$jobs" \
  -R "${1:-Serve|Hostile|AdminScope|Batcher|Shadow|TextStream|Workers|HttpClient|Residency|OnDemand}" -E ProcessRss
