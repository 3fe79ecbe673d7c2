#!/usr/bin/env bash
# Sets everything up, then runs every test through ctest (needs the shared models; see README).
set -euo pipefail
cd "$(dirname "$0")/.."
SWITCHYARD_EXTRA_PACKAGES="chromium python3 python3-requests python3-jinja2 python3-yaml ${SWITCHYARD_EXTRA_PACKAGES:-}" scripts/setup.sh
jobs="$(nproc 2> /dev/null || echo 2)"
ctest --test-dir build --output-on-failure --parallel "$jobs" "$@"
