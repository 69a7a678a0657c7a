#!/usr/bin/env bash
# Chains the three evaluation modes of the original evaluate.sh; every path and flag is an environment variable.
#   1. sweep: evaluate.py over every split under DATA_ROOT (SPLITS)
#   2. single file: evaluate.py on ANNOTATION_FILE with IMG_ROOT (skipped when ANNOTATION_FILE is empty)
#   3. token probabilities: evaluate_token_prob.py on TOKEN_PROB_SPLITS (RUN_TOKEN_PROB=0 skips it)
# NPROC_PER_NODE > 1 runs each stage under torchrun (NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT for multi-node).
# DRY_RUN=1 prints the commands without running them. Extra arguments go to every stage.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

PYTHON="${PYTHON:-$( [ -x "$HERE/.venv/bin/python" ] && echo "$HERE/.venv/bin/python" || echo python3 )}"
MODEL_PATH="${MODEL_PATH:-$HERE/checkpoints/chex-phi4mm-sft}"  # converted (tools/convert_phi4mm_checkpoint.py)
ADAPTERS="${ADAPTERS:-}"
DATA_ROOT="${DATA_ROOT:-$HERE/data/MIMIC-VQA-CoT}"
SPLITS="${SPLITS:-test_basic test_compare test_region}"
ANNOTATION_FILE="${ANNOTATION_FILE:-}"
IMG_ROOT="${IMG_ROOT:-$DATA_ROOT/images}"
# Name the run, not just the checkpoint (utils/evaluation/naming.py, evaluate.py's default too): two runs'
# checkpoint-N never share a folder.
model_name="$(cd "$HERE" && "$PYTHON" -m utils.evaluation.naming "$MODEL_PATH")"
OUTPUT_DIR="${OUTPUT_DIR:-$HERE/output/eval/$model_name}"
BATCH_SIZE="${BATCH_SIZE:-16}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-256}"
DYNAMIC_HD="${DYNAMIC_HD:-4}"
INFER_BACKEND="${INFER_BACKEND:-transformers}"
# sft: the SFT checkpoint's chat template; original: the original evaluate.py's prompt (the paper's figures).
PROMPT_FORMAT="${PROMPT_FORMAT:-sft}"
RUN_TOKEN_PROB="${RUN_TOKEN_PROB:-1}"
TOKEN_PROB_SPLITS="${TOKEN_PROB_SPLITS:-$SPLITS}"
TOP_K="${TOP_K:-5}"
NPROC_PER_NODE="${NPROC_PER_NODE:-1}"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29511}"
DRY_RUN="${DRY_RUN:-0}"
# Every knob's type and range, before anything runs (utils/knobs.py).
# shellcheck source=tools/knobs.sh
source "$HERE/tools/knobs.sh"
check_knobs evaluate
# Intra-op threads per process: the cores shared by this node's processes (README, "Launchers").
OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( $(nproc) / NPROC_PER_NODE > 0 ? $(nproc) / NPROC_PER_NODE : 1 ))}"
export OMP_NUM_THREADS

launcher=("$PYTHON")
if [ "$NPROC_PER_NODE" -gt 1 ] || [ "$NNODES" -gt 1 ]; then
  launcher=("$PYTHON" -m torch.distributed.run --nproc_per_node "$NPROC_PER_NODE" --nnodes "$NNODES"
            --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT")
fi
common=(--model_path "$MODEL_PATH" --batch_size "$BATCH_SIZE" --max_new_tokens "$MAX_NEW_TOKENS"
        --dynamic_hd "$DYNAMIC_HD" --infer_backend "$INFER_BACKEND" --prompt_format "$PROMPT_FORMAT")
# shellcheck disable=SC2206
[ -n "$ADAPTERS" ] && common+=(--adapters $ADAPTERS)

stage() {
  printf '+'; printf ' %q' "$@"; printf '\n'
  [ "$DRY_RUN" = 1 ] || (cd "$HERE" && "$@")
}

# shellcheck disable=SC2086
stage "${launcher[@]}" "$HERE/evaluate.py" "${common[@]}" --data_root "$DATA_ROOT" --splits $SPLITS \
  --img_root "$IMG_ROOT" --output_dir "$OUTPUT_DIR" "$@"
if [ -n "$ANNOTATION_FILE" ]; then
  stage "${launcher[@]}" "$HERE/evaluate.py" "${common[@]}" --annotation_file "$ANNOTATION_FILE" \
    --img_root "$IMG_ROOT" --output_dir "$OUTPUT_DIR/single" "$@"
fi
if [ "$RUN_TOKEN_PROB" = 1 ]; then
  # shellcheck disable=SC2086
  stage "${launcher[@]}" "$HERE/evaluate_token_prob.py" "${common[@]}" --data_root "$DATA_ROOT" \
    --splits $TOKEN_PROB_SPLITS --img_root "$IMG_ROOT" --top_k "$TOP_K" --output_dir "$OUTPUT_DIR/token_prob" "$@"
fi
