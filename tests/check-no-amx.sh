#!/usr/bin/env bash
# Proves on any x86 machine, AMX or not, that the engine's AMX guard holds where a CPU has AMX: the
# engine is configured for Sapphire Rapids (-march=sapphirerapids implies AMX), compiled and never
# run, and the test checks that
#   1. the configure passes: its objdump check found no AMX instruction in libggml-cpu.a;
#   2. the flags reach ggml: ggml-cpu compiles with -march=sapphirerapids and the -mno-amx-* flags;
#   3. that check can fail: ggml's AMX kernel, compiled by the same command less -mno-amx-*, holds
#      tileloadd (so the flags, not the absence of AMX code, keep it out).
# The engine lands in the usual cache under a key of its own: built once (minutes), then reused.
#
# Usage: tests/check-no-amx.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src="$1"
work="$2"
march="-march=sapphirerapids"
rm -rf "$work"
mkdir -p "$work"

if ! cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWITCHYARD_NATIVE=OFF \
    -DSWITCHYARD_USE_INSTALLED_LLAMA=OFF -DSWITCHYARD_REFERENCE_TOOLS= \
    "-DCMAKE_C_FLAGS=$march" "-DCMAKE_CXX_FLAGS=$march" > "$work/configure.log" 2>&1; then
  echo "FAIL: configuring the engine with $march failed; the last lines of $work/configure.log:"
  tail -n 20 "$work/configure.log"
  exit 1
fi
# The configure names the engine's cached prefix (.../llama-RELEASE-KEY); its build tree is build-KEY.
prefix=$(grep -o 'cached at [^ ]*' "$work/configure.log" | head -n 1 | sed 's/^cached at //')
engine_build="$(dirname "$prefix")/build-${prefix##*-}"
# The configure checked this when it built the engine; an engine from the cache is checked here.
cpu_backend=$(ls "$prefix"/lib*/libggml-cpu.a)
amx_count=$(objdump -d "$cpu_backend" | grep -c -E 'tileloadd|tdpbusd|tdpbf16ps|ldtilecfg' || true)
[ "$amx_count" -eq 0 ] || { echo "FAIL: $cpu_backend holds $amx_count AMX instructions"; exit 1; }
echo "ok: configured with $march; $cpu_backend holds no AMX instruction"
commands="$engine_build/compile_commands.json"
[ -f "$commands" ] || { echo "FAIL: no $commands"; exit 1; }

# One compile command of ggml-cpu's AMX kernel, as the engine was built.
amx_command=$(python3 - "$commands" << 'EOF'
import json, sys
for entry in json.load(open(sys.argv[1])):
    if entry["file"].endswith("ggml-cpu/amx/mmq.cpp"):
        print(entry["directory"])
        print(entry["command"])
        break
EOF
)
[ -n "$amx_command" ] || { echo "FAIL: ggml-cpu/amx/mmq.cpp is not among the engine's sources"; exit 1; }
directory=$(head -n 1 <<< "$amx_command")
command=$(tail -n 1 <<< "$amx_command")
for flag in "$march" -mno-amx-tile -mno-amx-int8 -mno-amx-bf16; do
  grep -q -- " $flag\( \|$\)" <<< "$command" || { echo "FAIL: ggml-cpu is compiled without $flag: $command"; exit 1; }
done
echo "ok: ggml-cpu compiles with $march -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

# The same command without the guard, into a file of our own.
unguarded=$(sed -E 's/ -mno-amx-[a-z0-9]+//g; s/ -o [^ ]+/ -o '"${work//\//\\/}"'\/mmq-unguarded.o/' <<< "$command")
(cd "$directory" && eval "$unguarded") > "$work/unguarded.log" 2>&1 \
  || { echo "FAIL: compiling the AMX kernel without the guard failed; see $work/unguarded.log"; exit 1; }
amx_count=$(objdump -d "$work/mmq-unguarded.o" | grep -c -E 'tileloadd|tdpbusd|tdpbf16ps|ldtilecfg' || true)
if [ "$amx_count" -eq 0 ]; then
  echo "FAIL: without -mno-amx-*, ggml's AMX kernel holds no AMX instruction: the check proves nothing"
  exit 1
fi
echo "ok: without -mno-amx-*, the same kernel holds $amx_count AMX instructions"
rm -rf "$work"
