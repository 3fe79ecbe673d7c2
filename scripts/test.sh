#!/usr/bin/env bash
# Sets everything up, then runs every test through ctest (needs the shared models; see README).
# Usage: scripts/test.sh [--quick] [ctest arguments...]
#   --quick   only the `unit` label (no model loaded, no server started): seconds on a built tree.
#             Labels: unit, model, http, bench, browser, build (tests/CMakeLists.txt); `ctest -L LABEL` picks others.
set -euo pipefail
cd "$(dirname "$0")/.."
select=()
if [ "${1:-}" = "--quick" ]; then
  shift
  select=(-L '^unit$')
fi
SWITCHYARD_EXTRA_PACKAGES="chromium python3 python3-requests python3-jinja2 python3-yaml ${SWITCHYARD_EXTRA_PACKAGES:-}" scripts/setup.sh
jobs="$(nproc 2> /dev/null || echo 2)"
ctest --test-dir build --output-on-failure --parallel "$jobs" "${select[@]}" "$@"
