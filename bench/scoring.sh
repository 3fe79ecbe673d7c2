#!/usr/bin/env bash
# Multiple-choice scoring work: tokens switchyard runs through the model, against the distinct
# tokens the items hold (shared prefixes once) and against one sequence per choice, on the four
# BLiMP phenomena and a cloze suite from the TinyStories text. Ratios: evaluated / unique (<= 1.2
# wanted) and one-sequence-per-choice / unique.
# Usage: bench/scoring.sh [MODEL (default stories260K)]
source "$(dirname "$0")/common.sh"
model="${1:-$data/models/stories260K-f32.gguf}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$sy" tasks cloze "$data/data/tinystories-valid-head.txt" --n 500 --seed 1 -o "$out/cloze.jsonl" > /dev/null
specs=()
for f in "$data"/data/blimp/*.jsonl; do specs+=(--tasks "blimp:$f"); done
specs+=(--tasks "$out/cloze.jsonl")
"$sy" eval -m "$model" "${specs[@]}" -t "$threads" --json --normalize --no-results |
  jq -r '.suites[] | [.name, .tokens.evaluated, .tokens.unique, .tokens.one_sequence_per_choice,
           (.tokens.evaluated / .tokens.unique), (.tokens.one_sequence_per_choice / .tokens.unique)] | @tsv' |
  awk -F'\t' 'BEGIN { printf "%-44s %10s %10s %10s %9s %9s\n", "suite", "evaluated", "unique", "naive", "eval/uniq", "naive/uniq" }
              { printf "%-44s %10d %10d %10d %9.3f %9.3f\n", $1, $2, $3, $4, $5, $6 }'
