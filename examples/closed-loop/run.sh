#!/usr/bin/env bash
# The closed loop on the bundled example (docs/closed-loop.md), start to end:
#   serve babyllama on two routes that capture their traffic; send 250 stories and 250 questions;
#   label some answers; build a suite from the captured questions; plan on both captured routes;
#   roll the plan's choice for the questions out as a shadow; send fresh questions until the shadow
#   is promoted; print what /stats says.
# Needs build/switchyard (scripts/demo.sh builds it), curl and jq. Writes examples/closed-loop/out/.
# Environment: SWITCHYARD_DATA_DIR (default ../shared) holds models/.
set -euo pipefail
cd "$(dirname "$0")"
sy=../../build/switchyard
[ -x "$sy" ] || { echo "closed-loop: build switchyard first (scripts/demo.sh)" >&2; exit 1; }
for tool in curl jq; do command -v "$tool" > /dev/null || { echo "closed-loop: needs $tool" >&2; exit 1; }; done
data=$(realpath "${SWITCHYARD_DATA_DIR:-../../../shared}")
export SWITCHYARD_DATA_DIR="$data"
rm -rf out && mkdir -p out

cat > out/portfolio.yaml << YAML
models:
  - {name: babyllama, path: $data/models/babyllama-0.9M-f32.gguf, context: 256, parallel: 4, threads: 1, normalize: true}
routes:
  - {name: stories, model: babyllama, capture: {sample: 1}}
  - {name: qa, model: babyllama, capture: {sample: 1, redact: [email, phone, card]}}
rules:
  - {route: qa, regex: "^Q:"}
default_route: stories
server: {admin_model_dirs: [plan]}   # where a rollout may load the plan's variants from
YAML
export SWITCHYARD_ADMIN_TOKEN=closed-loop-demo
"$sy" serve --portfolio out/portfolio.yaml --port 0 > out/serve.out 2> out/serve.err &
serve_pid=$!
trap 'kill $serve_pid 2> /dev/null || true' EXIT
for _ in $(seq 300); do grep -q "listening on" out/serve.out 2> /dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*' out/serve.out)
echo "1. serving on $url, capture on for routes stories and qa"

names=(Tim Lily Ben Sue Max Anna Tom Mia)
things=("a red ball" "a big dog" "a small cat" "a toy car" "a blue bird" "a tall tree" "a warm cake" "a shiny box")
ask() {  # ask I: a question (chat); prints the response id
  local i=$1
  curl -s "$url/v1/chat/completions" -H 'Content-Type: application/json' -d "$(jq -cn --arg q "Q: where did ${names[i % 8]} see ${things[(i / 8) % 8]}?" \
    '{messages: [{role: "user", content: $q}], max_tokens: 6, temperature: 0}')" | jq -r .id
}
for i in $(seq 0 249); do
  curl -s "$url/v1/completions" -H 'Content-Type: application/json' -d "$(jq -cn --arg p "Once upon a time ${names[i % 8]} found ${things[(i / 8) % 8]}" \
    '{prompt: $p, max_tokens: 6, temperature: 0}')" > /dev/null
done
ids=()
for i in $(seq 0 249); do ids+=("$(ask "$i")"); done
for i in $(seq 0 19); do
  curl -s "$url/v1/feedback" -H 'Content-Type: application/json' -d "{\"id\": \"${ids[i]}\", \"correct\": true}" > /dev/null
done
echo "2. sent 500 requests, labelled 20 answers: $(curl -s "$url/stats" | jq -c .capture)"

"$sy" tasks capture --route qa --since 1d --db out/captures.sqlite -o out/qa.jsonl
echo "3. the suite's header: $(head -1 out/qa.jsonl)"

(cd out && "../$sy" plan ../plan.yaml -o plan --results results.sqlite -t 1 > plan.log 2>&1)
echo "4. the plan decided: $(jq -c '[.recommendation[] | {class, action, model}]' out/plan/decision.json) (out/plan/report.html)"

curl -s -X POST "$url/admin/rollout" -H "Authorization: Bearer $SWITCHYARD_ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d '{"plan": "plan", "class": "qa", "min_samples": 30, "promote_at": 0.8, "rollback_below": 0.3}' | jq -c '{status, route, candidate, incumbent}'
for i in $(seq 250 450); do
  ask "$i" > /dev/null
  # The comparison runs beside the answers: the shadow's state lags a request or two.
  state=$(curl -s "$url/stats" | jq -r '.shadows.qa.state // "starting"')
  case "$state" in promoted | "rolled back") break ;; esac
done
echo "5. after $((i - 249)) fresh questions the shadow is $state:"
curl -s "$url/stats" | jq -c '{route: (.portfolio.routes[] | select(.name == "qa") | {model, fallback, note, evidence}), shadow: .shadows.qa}'
