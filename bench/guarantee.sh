#!/usr/bin/env bash
# The verdict's guarantee by simulation (docs/plan.md, "The guarantee"): simulated plans with known
# true drops run through the real search and choice; prints the false-recommendation rate (<= alpha
# wanted at the limit and beyond), the power and the items scored, per grid point.
# Usage: bench/guarantee.sh [--runs N] [--items N...] [--accuracy P...] [--recovered R...]
#        [--alpha A] [--max-drop D] [--drop relative|absolute]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target switchyard_guarantee_bench > /dev/null || { echo "bench: building switchyard_guarantee_bench failed" >&2; exit 1; }
exec build/switchyard_guarantee_bench "$@"
