#!/usr/bin/env bash
# KG agreement of generated reasoning with the reference explanations, on top of `python -m rexkg`:
#   1. KG of every reference explanation's <think> (field EXPLANATION_FIELD)
#   2. KG of every generated <think> (field GENERATED_FIELD; no <think>: the text before <answer>)
#   3. entity AND relation precision / recall / F1, micro and per-sample macro -> <OUT_DIR>/kg_metric.json
# Input: an evaluation results JSON (ours or the original's {"results": [...]}) or JSON lines with both fields.
# usage: tools/get_kg_metric.sh RESULTS [OUT_DIR]      (DRY_RUN=1 prints the commands)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Paths are the caller's (relative to the directory it runs in), made absolute before the commands cd to the repo.
RESULTS="$(realpath -m -- "${1:?usage: tools/get_kg_metric.sh RESULTS_JSON [OUT_DIR]}")"
OUT_DIR="$(realpath -m -- "${2:-$(dirname "$RESULTS")/kg}")"
PYTHON="${PYTHON:-$( [ -x "$HERE/.venv/bin/python" ] && echo "$HERE/.venv/bin/python" || echo python3 )}"
KG_BACKEND="${KG_BACKEND:-rules}"
REXKG_MODEL_DIR="${REXKG_MODEL_DIR:-}"
REXKG_TOKENIZER_DIR="${REXKG_TOKENIZER_DIR:-}"
EXPLANATION_FIELD="${EXPLANATION_FIELD:-explanation}"
GENERATED_FIELD="${GENERATED_FIELD:-generated_text}"
DRY_RUN="${DRY_RUN:-0}"

backend=(--backend "$KG_BACKEND")
[ -n "$REXKG_MODEL_DIR" ] && backend+=(--model-dir "$REXKG_MODEL_DIR")
[ -n "$REXKG_TOKENIZER_DIR" ] && backend+=(--tokenizer-dir "$REXKG_TOKENIZER_DIR")

run() {
  printf '+'; printf ' %q' "$@"; printf '\n'
  [ "$DRY_RUN" = 1 ] || (cd "$HERE" && "$@")
}
run "$PYTHON" -m rexkg extract --input "$RESULTS" --field "$EXPLANATION_FIELD" --think "${backend[@]}" \
  --output "$OUT_DIR/gt_kg.jsonl"
run "$PYTHON" -m rexkg extract --input "$RESULTS" --field "$GENERATED_FIELD" --think "${backend[@]}" \
  --output "$OUT_DIR/pred_kg.jsonl"
run "$PYTHON" -m rexkg metric --gt "$OUT_DIR/gt_kg.jsonl" --pred "$OUT_DIR/pred_kg.jsonl" --json "$OUT_DIR/kg_metric.json"
