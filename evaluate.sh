#!/usr/bin/env bash
# The evaluation modes of the original evaluate.sh; every path and flag is an environment variable.
#   1. splits: every split of SPLITS under DATA_ROOT, generated once. Those in TOKEN_PROB_SPLITS (default: all of
#      them) run through evaluate_token_prob.py, which writes everything evaluate.py does plus token probabilities
#      and report.html; RUN_TOKEN_PROB=0 runs plain evaluate.py instead.
#   2. single file: evaluate.py on ANNOTATION_FILE with IMG_ROOT (skipped when ANNOTATION_FILE is empty)
# NPROC_PER_NODE > 1 runs each stage under torchrun (NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT for multi-node).
# DRY_RUN=1 makes every check of a real run and prints the commands (TARGET=gpu: a GPU node's plan). Extra
# arguments go to every stage.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

INFER_BACKEND="${INFER_BACKEND:-transformers}"       # vllm: vLLM 0.32 in its own environment (.venv-vllm)
VENV="$HERE/.venv"; [ "$INFER_BACKEND" = vllm ] && VENV="$HERE/.venv-vllm"
PYTHON="${PYTHON:-$( [ -x "$VENV/bin/python" ] && echo "$VENV/bin/python" || echo python3 )}"
VLLM_GPU_MEMORY_UTILIZATION="${VLLM_GPU_MEMORY_UTILIZATION:-0.9}"
VLLM_TENSOR_PARALLEL_SIZE="${VLLM_TENSOR_PARALLEL_SIZE:-1}"
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
# sft: the SFT checkpoint's chat template; original: the original evaluate.py's prompt (the paper's figures).
PROMPT_FORMAT="${PROMPT_FORMAT:-sft}"
RUN_TOKEN_PROB="${RUN_TOKEN_PROB:-1}"
TOKEN_PROB_SPLITS="${TOKEN_PROB_SPLITS:-$SPLITS}"
TOP_K="${TOP_K:-5}"
NUM_SAMPLES="${NUM_SAMPLES:-0}"                      # headroom: K sampled completions per item (0: off; GRPO draws 8)
TEMPERATURE="${TEMPERATURE:-0.9}"                    # their temperature: the paper's GRPO rollouts
NPROC_PER_NODE="${NPROC_PER_NODE:-1}"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29511}"
TARGET="${TARGET:-auto}"                             # the machine the plan is for: auto (this one), gpu, cpu
DRY_RUN="${DRY_RUN:-0}"
# Every knob's type and range, before anything runs (utils/knobs.py).
# shellcheck source=tools/knobs.sh
source "$HERE/tools/knobs.sh"
check_knobs evaluate
# Intra-op threads per process: the cores shared by this node's processes (README, "Launchers").
OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( $(nproc) / NPROC_PER_NODE > 0 ? $(nproc) / NPROC_PER_NODE : 1 ))}"
export OMP_NUM_THREADS

die() { echo "evaluate.sh: $*" >&2; exit 2; }
# What a real run checks before it loads a model, DRY_RUN=1 checks too.
[ -f "$MODEL_PATH/config.json" ] || die "MODEL_PATH=$MODEL_PATH: no checkpoint there (no config.json)"
for adapter in $ADAPTERS; do [ -d "$adapter" ] || die "ADAPTERS: $adapter: no such folder"; done
[ -z "$ANNOTATION_FILE" ] || [ -f "$ANNOTATION_FILE" ] || die "ANNOTATION_FILE=$ANNOTATION_FILE: no such file"
for split in $SPLITS $TOKEN_PROB_SPLITS; do
  if [ ! -f "$DATA_ROOT/annotations/eval/${split}_vqa.json" ]; then
    found="$(cd "$DATA_ROOT/annotations/eval" 2>/dev/null && ls -- *_vqa.json 2>/dev/null | sed 's/_vqa\.json$//' | tr '\n' ' ' || true)"
    die "split $split: no $DATA_ROOT/annotations/eval/${split}_vqa.json (splits there: ${found:-none})"
  fi
done
precision="$(cd "$HERE" && "$PYTHON" -m utils.precision auto auto "$TARGET")" || die "cannot resolve the precision"
read -r dtype attention device machine <<<"$precision"
if [ "$DRY_RUN" != 1 ] && [ "$device" != "$machine" ]; then
  die "TARGET=$TARGET plans for a $device machine, but this one is $machine: use TARGET with DRY_RUN=1 only"
fi
backend=""
if [ "$NPROC_PER_NODE" -gt 1 ] || [ "$NNODES" -gt 1 ]; then backend=", process group $([ "$device" = cuda ] && echo nccl || echo gloo)"; fi
echo "evaluate.sh: precision $dtype, attention $attention, device $device$backend$([ "$TARGET" = auto ] || echo " (TARGET=$TARGET)")"

if [ "$INFER_BACKEND" = vllm ]; then
  "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)" 2>/dev/null \
    || die "INFER_BACKEND=vllm: $PYTHON has no vLLM; build its environment with \`make venv-vllm\` (.venv-vllm)"
  [ -z "$ADAPTERS" ] || die "INFER_BACKEND=vllm with ADAPTERS: vLLM holds the model with its vision LoRA merged and \
has no slot for another adapter; merge it into a checkpoint first, or use INFER_BACKEND=transformers"
  # vLLM's process environment (utils/vllm_env.py): on a CPU its OpenMP runtime and KV-cache size.
  while IFS= read -r line; do export "${line?}"; echo "evaluate.sh: $line"; done \
    < <(cd "$HERE" && "$PYTHON" -m utils.vllm_env "$device")
fi

launcher=("$PYTHON")
if [ "$NPROC_PER_NODE" -gt 1 ] || [ "$NNODES" -gt 1 ]; then
  launcher=("$PYTHON" -m torch.distributed.run --nproc_per_node "$NPROC_PER_NODE" --nnodes "$NNODES"
            --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT")
fi
common=(--model_path "$MODEL_PATH" --batch_size "$BATCH_SIZE" --max_new_tokens "$MAX_NEW_TOKENS"
        --dynamic_hd "$DYNAMIC_HD" --infer_backend "$INFER_BACKEND" --prompt_format "$PROMPT_FORMAT"
        --num_samples "$NUM_SAMPLES" --temperature "$TEMPERATURE")
[ "$INFER_BACKEND" = vllm ] && common+=(--gpu_memory_utilization "$VLLM_GPU_MEMORY_UTILIZATION"
                                        --tensor_parallel_size "$VLLM_TENSOR_PARALLEL_SIZE")
# shellcheck disable=SC2206
[ -n "$ADAPTERS" ] && common+=(--adapters $ADAPTERS)

stage() {
  printf '+'; printf ' %q' "$@"; printf '\n'
  [ "$DRY_RUN" = 1 ] || (cd "$HERE" && "$@")
}

# Each split is generated once: with token probabilities where asked (they add report.html to the same files).
plain=() token=()
for split in $SPLITS $TOKEN_PROB_SPLITS; do
  case " ${plain[*]} ${token[*]} " in *" $split "*) continue ;; esac
  if [ "$RUN_TOKEN_PROB" = 1 ] && [[ " $TOKEN_PROB_SPLITS " == *" $split "* ]]; then token+=("$split"); else plain+=("$split"); fi
done
if [ "${#plain[@]}" -gt 0 ]; then
  stage "${launcher[@]}" "$HERE/evaluate.py" "${common[@]}" --data_root "$DATA_ROOT" --splits "${plain[@]}" \
    --img_root "$IMG_ROOT" --output_dir "$OUTPUT_DIR" "$@"
fi
if [ "${#token[@]}" -gt 0 ]; then
  stage "${launcher[@]}" "$HERE/evaluate_token_prob.py" "${common[@]}" --data_root "$DATA_ROOT" \
    --splits "${token[@]}" --img_root "$IMG_ROOT" --top_k "$TOP_K" --output_dir "$OUTPUT_DIR" "$@"
fi
if [ -n "$ANNOTATION_FILE" ]; then
  stage "${launcher[@]}" "$HERE/evaluate.py" "${common[@]}" --annotation_file "$ANNOTATION_FILE" \
    --img_root "$IMG_ROOT" --output_dir "$OUTPUT_DIR/single" "$@"
fi
[ "$DRY_RUN" = 1 ] && echo "evaluate.sh: DRY_RUN=1: every check of a real run passed; nothing was generated or written"
exit 0
