#!/usr/bin/env bash
# serve within a memory budget: three in-process on-demand models (babyllama, stories260K and a
# Q8_0 copy of babyllama) under traffic that alternates between them, with a budget that fits two:
# p50/p99 latency per model, loads and unloads, the server's peak RSS against the budget,
# failures; and each model's cold load beside the floor of reading its file. With --135m, three
# models of SmolLM2-135M's shape instead (make-model: F16 seeds 1 and 2, and a Q8_0 of the first).
# Usage: bench/serve-switch.sh [--135m] [ROUNDS (default 5)] [REQUESTS per model and round (default 40)]
source "$(dirname "$0")/common.sh"
source bench/serve-lib.sh
shape=shared
if [ "${1:-}" = --135m ]; then
  shape=135m
  shift
fi
rounds="${1:-5}"
per_phase="${2:-40}"
if [ "$shape" = shared ]; then
  models=(baby stories q8)
  declare -A file=([baby]="$(realpath "$data/models/babyllama-0.9M-f32.gguf")"
    [stories]="$(realpath "$data/models/stories260K-f32.gguf")" [q8]="$work/baby-q8.gguf")
  "$sy" quantize "${file[baby]}" "${file[q8]}" Q8_0 > /dev/null
else
  models=(a b q8)
  declare -A file=([a]="$work/a.gguf" [b]="$work/b.gguf" [q8]="$work/a-q8.gguf")
  "$sy" make-model smollm2-135m "${file[a]}" --f16 --seed 1 > /dev/null
  "$sy" make-model smollm2-135m "${file[b]}" --f16 --seed 2 > /dev/null
  "$sy" quantize "${file[a]}" "${file[q8]}" Q8_0 > /dev/null
fi

# portfolio SERVER_SETTINGS: the three models, on demand, into $work/switch.yaml.
portfolio() {
  {
    echo "version: 1"
    echo "models:"
    for m in "${models[@]}"; do
      echo "  - {name: $m, path: ${file[$m]}, context: 2048, parallel: 4, threads: 1, load: on_demand}"
    done
    echo "server: $1"
  } > "$work/switch.yaml"
}
stats_of() { curl -s "http://127.0.0.1:$1/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['residency']['models']['$2']['$3'])"; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v s="$2" '$1 == s { print $2 }'; }

# A probe run finds what each model holds once loaded and the room its load is given; the budget
# then fits any loaded model beside another's load, and no two beside a third's.
portfolio "{min_resident_s: 0}"
start_server probe "$sy" serve --portfolio "$work/switch.yaml" --port 0
declare -A held bound
for m in "${models[@]}"; do
  curl -s -o /dev/null "http://127.0.0.1:$probe_port/v1/completions" -H 'Content-Type: application/json' -d "{\"model\":\"$m\",\"prompt\":\"Hi\",\"max_tokens\":1}"
  held[$m]=$(stats_of "$probe_port" "$m" measured_bytes)
  bound[$m]=$(stats_of "$probe_port" "$m" bound_bytes)
done
kill "$probe_pid"
budget=0
for x in "${models[@]}"; do for y in "${models[@]}"; do
  [ "$x" = "$y" ] || budget=$((budget > held[$x] + bound[$y] ? budget : held[$x] + bound[$y]))
done; done
budget=$(((budget + 1048575) / 1048576 * 1048576))

# Cold page cache where this user may drop it, so the first loads and the floor read from disk.
cold=no
if (echo 1 > /proc/sys/vm/drop_caches) 2> /dev/null; then cold=yes; fi
portfolio "{memory_budget: $budget, min_resident_s: 1}"
start_server switch "$sy" serve --portfolio "$work/switch.yaml" --port 0
base="http://127.0.0.1:$switch_port"
rss_start=$(rss_mib "$switch_pid")
declare -A first_load p50s p99s failures
for round in $(seq "$rounds"); do
  for m in "${models[@]}"; do
    drive "$base" /v1/completions "{\"model\":\"$m\",\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0}" "$per_phase" 4
    p50s[$m]+="$(echo "$drive_line" | awk '{ print $10 }') "
    p99s[$m]+="$(echo "$drive_line" | awk '{ print $12 }') "
    failures[$m]=$((${failures[$m]:-0} + drive_failures))
    [ "$round" -gt 1 ] || first_load[$m]=$(metric "$switch_port" "switchyard_model_load_seconds_sum{model=\"$m\"}")
  done
done
peak_rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$switch_pid/status")
peak_resident=$(curl -s "$base/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['residency']['peak_resident_bytes'])")

# The floor: reading the file once (cold when the cache could be dropped, else a second, warm read).
floor_ms() {
  if [ "$cold" = yes ]; then echo 1 > /proc/sys/vm/drop_caches; else dd if="$1" of=/dev/null bs=1M 2> /dev/null; fi
  dd if="$1" of=/dev/null bs=1M 2>&1 | awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") printf "%.3f", $(i - 1) * 1000 }'
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
median() { echo "$1" | tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
highest() { echo "$1" | tr ' ' '\n' | grep . | sort -g | tail -1; }

echo "$shape models; budget $(mib "$budget") MiB (two fit: one model held beside the room for another's load; three do not); $rounds rounds of" \
  "$per_phase requests per model at 4 concurrent, min_resident_s 1; page cache cold: $cold"
echo
echo "| model | file MiB | bound MiB | held MiB | loads | unloads | p50 ms | p99 ms | failures | cold load ms | read floor ms | load / floor |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
status=0
for m in "${models[@]}"; do
  load_ms=$(awk -v s="${first_load[$m]}" 'BEGIN { printf "%.1f", s * 1000 }')
  floor=$(floor_ms "${file[$m]}")
  echo "| $m | $(mib "$(stat -c %s "${file[$m]}")") | $(mib "${bound[$m]}") | $(mib "${held[$m]}")" \
    "| $(metric "$switch_port" "switchyard_model_loads_total{model=\"$m\"}") | $(metric "$switch_port" "switchyard_model_unloads_total{model=\"$m\"}")" \
    "| $(median "${p50s[$m]}") | $(highest "${p99s[$m]}") | ${failures[$m]} | $load_ms | $floor" \
    "| $(awk -v a="$load_ms" -v b="$floor" 'BEGIN { printf "%.0f", (b > 0) ? a / b : 0 }') |"
  [ "${failures[$m]}" -eq 0 ] || status=1
done
echo
echo "server RSS: $rss_start MiB with no model loaded, peak $peak_rss MiB (VmHWM): grew" \
  "$(awk -v a="$peak_rss" -v b="$rss_start" 'BEGIN { printf "%.1f", a - b }') MiB against the budget's $(mib "$budget") MiB;" \
  "peak resident bytes reported $(mib "$peak_resident") MiB"
echo "(p50: the median of the phases' p50; p99: the highest phase p99, which holds the waits for loads)"
exit "$status"
