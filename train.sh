#!/usr/bin/env bash
# One GRPO job: the CheXPO-v2 recipe on a native Phi-4-MM checkpoint, through `swift rlhf` + plugin.py.
# Every knob is an environment variable; defaults are the paper's recipe (see docs/training.md).
#   MODEL_PATH=... DATASET=... ./train.sh [-- extra ms-swift arguments]
# DRY_RUN=1 makes every check of a real run, prints the resolved command and stops (TARGET=gpu: a GPU node's plan).
# RESUME=1 continues from the last checkpoint.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

MODEL_PATH="${MODEL_PATH:-$HERE/checkpoints/chex-phi4mm-sft}"
DATA_ROOT="${DATA_ROOT:-$HERE/data/MIMIC-VQA-CoT}"
DATASET="${DATASET:-$DATA_ROOT/annotations/hard_uniform/5000.jsonl}"
RUN_NAME="${RUN_NAME:-$(basename "$(dirname "$DATASET")")_$(basename "$DATASET" .jsonl)}"
OUTPUT_DIR="${OUTPUT_DIR:-$HERE/output/grpo/$RUN_NAME}"
LR="${LR:-4e-6}"
NUM_GENERATIONS="${NUM_GENERATIONS:-8}"
BETA="${BETA:-0.5}"
EPOCHS="${EPOCHS:-1}"
MAX_STEPS="${MAX_STEPS:--1}"
PER_DEVICE_BATCH="${PER_DEVICE_BATCH:-8}"
GRAD_ACCUM="${GRAD_ACCUM:-1}"
MAX_COMPLETION_LENGTH="${MAX_COMPLETION_LENGTH:-256}"
TEMPERATURE="${TEMPERATURE:-0.9}"
EPSILON="${EPSILON:-0.2}"
WARMUP_RATIO="${WARMUP_RATIO:-0.1}"
REWARD_FUNCS="${REWARD_FUNCS:-external_r1v_acc external_kg_jac}"
REWARD_WEIGHTS="${REWARD_WEIGHTS:-}"                 # empty: every reward weighs 1 (the paper sums them)
DYNAMIC_SAMPLE="${DYNAMIC_SAMPLE:-true}"
MAX_RESAMPLE_TIMES="${MAX_RESAMPLE_TIMES:-4}"
DYNAMIC_SAMPLE_MIN_STD="${DYNAMIC_SAMPLE_MIN_STD:-0.06}"  # the value the original hard-coded
# 5,000 prompts x 8 generations / (8 GPUs x 8 completions) = 625 steps: a save every 125 leaves 5 checkpoints
# (the original's 1000 left none but the final one). Keep them all by default.
SAVE_STEPS="${SAVE_STEPS:-125}"
SAVE_TOTAL_LIMIT="${SAVE_TOTAL_LIMIT:-5}"
LOGGING_STEPS="${LOGGING_STEPS:-1}"
FREEZE_NON_VISION_PARAMS="${FREEZE_NON_VISION_PARAMS:-1}"
FREEZE_TRAIN_LM_HEAD="${FREEZE_TRAIN_LM_HEAD:-0}"
TUNER_TYPE="${TUNER_TYPE:-full}"                     # full + the freezing hook = vision LoRA only (README)
MAX_LENGTH="${MAX_LENGTH:-4096}"
DYNAMIC_HD="${DYNAMIC_HD:-4}"                        # max image crops; the paper's evaluation setting (README)
ALLOW_TRUNCATION="${ALLOW_TRUNCATION:-0}"            # 1: train even if some prompts exceed MAX_LENGTH
TORCH_DTYPE="${TORCH_DTYPE:-auto}"                   # auto: bfloat16 on CUDA, float32 on CPU
ATTN_IMPL="${ATTN_IMPL:-auto}"                       # auto: flash_attention_2 with CUDA + flash-attn, else sdpa
DEEPSPEED="${DEEPSPEED:-}"                           # zero2 | zero3 | a config path
USE_VLLM="${USE_VLLM:-false}"                        # true: rollouts on vLLM (.venv-vllm; docs/vllm.md)
VLLM_MODE="${VLLM_MODE:-colocate}"                   # colocate: in each training process; server: `swift rollout`
VLLM_GPU_MEMORY_UTILIZATION="${VLLM_GPU_MEMORY_UTILIZATION:-0.4}"  # colocate: the rest is the trainer's
VLLM_TENSOR_PARALLEL_SIZE="${VLLM_TENSOR_PARALLEL_SIZE:-1}"
SLEEP_LEVEL="${SLEEP_LEVEL:-0}"                      # 1: vLLM's weights leave the GPU while the trainer steps
MOVE_MODEL_BATCHES="${MOVE_MODEL_BATCHES:-0}"        # >0: the weight sync sends the layers in this many groups
VLLM_SERVER_HOST="${VLLM_SERVER_HOST:-127.0.0.1}"    # server mode: where tools/rollout_server.sh runs
VLLM_SERVER_PORT="${VLLM_SERVER_PORT:-8000}"
TARGET="${TARGET:-auto}"                             # the machine the plan is for: auto (this one), gpu, cpu
NPROC_PER_NODE="${NPROC_PER_NODE:-1}"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
DATALOADER_WORKERS="${DATALOADER_WORKERS:-4}"
DATASET_NUM_PROC="${DATASET_NUM_PROC:-4}"             # also the processes of the pre-flight image check
SKIP_BAD_ROWS="${SKIP_BAD_ROWS:-0}"                  # 1: train on the rows that pass the pre-flight check
REPORT_TO="${REPORT_TO:-none}"
SEED="${SEED:-42}"
RESUME="${RESUME:-0}"
LOG_DIR="${LOG_DIR:-$HERE/logs}"
GPU_BENCH="${GPU_BENCH:-$HERE/bench_out/gpu/gpu_bench.json}"   # bench/gpu_bench.py's measurement: DRY_RUN's hours
DRY_RUN="${DRY_RUN:-0}"
# vLLM lives in its own environment (.venv-vllm: its numba pins numpy below ours); USE_VLLM=true runs there.
VENV="$HERE/.venv"; [ "$USE_VLLM" = true ] && VENV="$HERE/.venv-vllm"
PYTHON="${PYTHON:-$( [ -x "$VENV/bin/python" ] && echo "$VENV/bin/python" || echo python3 )}"
SWIFT="${SWIFT:-$( [ -x "$VENV/bin/swift" ] && echo "$VENV/bin/swift" || echo swift )}"
[ "${1:-}" = "--" ] && shift

die() { echo "train.sh: $*" >&2; exit 2; }
# A user's own ms-swift plugins (`-- --external_plugins my.py`) may register rewards: the knob check loads them.
extra_plugins=() taking=0
for arg in "$@"; do
  case "$arg" in
    --external_plugins) taking=1 ;;
    --*) taking=0 ;;
    *) [ "$taking" = 1 ] && extra_plugins+=("$arg") ;;
  esac
done
export CHEX_EXTRA_PLUGINS="${extra_plugins[*]}"
# Every knob's type and range, before anything is planned or written (utils/knobs.py).
# shellcheck source=tools/knobs.sh
source "$HERE/tools/knobs.sh"
check_knobs train
# Intra-op threads per process: the cores shared by this node's processes (more oversubscribes the CPU: a 2-core
# box with one other torch process ran the demo's SFT at 8-10 s/it instead of ~14 it/s).
OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( $(nproc) / ${NPROC_PER_NODE:-1} > 0 ? $(nproc) / ${NPROC_PER_NODE:-1} : 1 ))}"

# Precision: one policy with evaluation (utils/precision.py): bf16 + flash-attention where CUDA and flash-attn exist,
# bf16 + sdpa on CUDA without flash-attn, float32 + sdpa on CPU. TARGET=gpu plans for a GPU node from a login node.
precision="$(cd "$HERE" && "$PYTHON" -m utils.precision "$TORCH_DTYPE" "$ATTN_IMPL" "$TARGET")" \
  || die "cannot resolve TORCH_DTYPE=$TORCH_DTYPE ATTN_IMPL=$ATTN_IMPL (see the error above)"
read -r TORCH_DTYPE ATTN_IMPL DEVICE MACHINE <<<"$precision"
if [ "$DRY_RUN" != 1 ] && [ "$DEVICE" != "$MACHINE" ]; then
  die "TARGET=$TARGET plans for a $DEVICE machine, but this one is $MACHINE: use TARGET with DRY_RUN=1 only"
fi
echo "train.sh: precision $TORCH_DTYPE, attention $ATTN_IMPL, device $DEVICE$([ "$TARGET" = auto ] || echo " (TARGET=$TARGET)")"

case "$DEEPSPEED" in
  "") deepspeed=() ;;
  zero2|zero3) deepspeed=(--deepspeed "$HERE/tools/deepspeed/$DEEPSPEED.json") ;;
  *) [ -f "$DEEPSPEED" ] || die "DEEPSPEED=$DEEPSPEED: use zero2, zero3 or a config file"; deepspeed=(--deepspeed "$DEEPSPEED") ;;
esac

# vLLM rollouts (swift_patches/vllm_phi4mm.py): vLLM holds the weights with the vision LoRA merged, which a PEFT tuner
# over the model would switch off; colocated engines split each node's GPUs into tensor-parallel groups.
vllm=(--use_vllm false)
if [ "$USE_VLLM" = true ]; then
  "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)" 2>/dev/null \
    || die "USE_VLLM=true: $PYTHON has no vLLM; build its environment with \`make venv-vllm\` (.venv-vllm)"
  [ "$TUNER_TYPE" = full ] || die "USE_VLLM=true needs TUNER_TYPE=full (the vision LoRA is merged into vLLM's \
weights; TUNER_TYPE=$TUNER_TYPE puts a PEFT adapter over it and switches it off)"
  vllm=(--use_vllm true --vllm_mode "$VLLM_MODE" --vllm_max_model_len "$MAX_LENGTH")
  if [ "$VLLM_MODE" = colocate ]; then
    [ $(( NPROC_PER_NODE % VLLM_TENSOR_PARALLEL_SIZE )) = 0 ] || die "VLLM_TENSOR_PARALLEL_SIZE=$VLLM_TENSOR_PARALLEL_SIZE \
must divide NPROC_PER_NODE=$NPROC_PER_NODE (colocated engines split each node's processes into groups of that size)"
    vllm+=(--vllm_gpu_memory_utilization "$VLLM_GPU_MEMORY_UTILIZATION"
           --vllm_tensor_parallel_size "$VLLM_TENSOR_PARALLEL_SIZE" --sleep_level "$SLEEP_LEVEL")
  else
    # ms-swift 4.6 sends the weights to a rollout server over NCCL (vLLM's PyNcclCommunicator, CUDA streams).
    [ "$DEVICE" = cuda ] || die "VLLM_MODE=server needs GPUs: ms-swift sends the weights to the rollout server over \
NCCL; on a CPU use VLLM_MODE=colocate"
    vllm+=(--vllm_server_host "$VLLM_SERVER_HOST" --vllm_server_port "$VLLM_SERVER_PORT")
  fi
  if [ "$MOVE_MODEL_BATCHES" -gt 0 ]; then vllm+=(--move_model_batches "$MOVE_MODEL_BATCHES"); fi
  # CUDA graphs need a GPU; vLLM's CPU build runs eagerly.
  if [ "$DEVICE" = cpu ]; then vllm+=(--vllm_enforce_eager true); fi
fi

[ -f "$MODEL_PATH/config.json" ] || die "MODEL_PATH=$MODEL_PATH: no checkpoint there (no config.json); convert \
microsoft's SFT checkpoint with tools/convert_phi4mm_checkpoint.py"
[ -f "$DATASET" ] || die "DATASET=$DATASET: no such file (draw a training set with tools/sample_data.py, or convert \
an annotation file with tools/convert_to_grpo.py)"

resume=()
if [ "$RESUME" = 1 ]; then
  # the newest complete checkpoint: a kill during saving leaves one without trainer_state.json (written last)
  last=""
  for checkpoint in $(ls -d "$OUTPUT_DIR"/checkpoint-* 2>/dev/null | sort -t- -k2 -n -r || true); do
    [ -f "$checkpoint/trainer_state.json" ] && { last="$checkpoint"; break; }
  done
  if [ -n "$last" ]; then resume=(--resume_from_checkpoint "$last"); echo "train.sh: resuming from $last"
  else echo "train.sh: RESUME=1 but no checkpoint in $OUTPUT_DIR: starting fresh"; fi
fi

# shellcheck disable=SC2206
reward_funcs=($REWARD_FUNCS)
weights=()
# shellcheck disable=SC2206
[ -n "$REWARD_WEIGHTS" ] && weights=(--reward_weights $REWARD_WEIGHTS)

env_vars=(FREEZE_NON_VISION_PARAMS="$FREEZE_NON_VISION_PARAMS" FREEZE_TRAIN_LM_HEAD="$FREEZE_TRAIN_LM_HEAD"
          DYNAMIC_SAMPLE_MIN_STD="$DYNAMIC_SAMPLE_MIN_STD" DYNAMIC_HD="$DYNAMIC_HD" OMP_NUM_THREADS="$OMP_NUM_THREADS")
distributed=()
if [ "$USE_VLLM" = true ]; then
  # vLLM's process environment (utils/vllm_env.py): on a CPU its OpenMP runtime and KV-cache size.
  while IFS= read -r line; do env_vars+=("$line"); done < <(cd "$HERE" && "$PYTHON" -m utils.vllm_env "$DEVICE")
fi
if [ "$NPROC_PER_NODE" -gt 1 ] || [ "$NNODES" -gt 1 ]; then
  env_vars+=(NPROC_PER_NODE="$NPROC_PER_NODE" NNODES="$NNODES" NODE_RANK="$NODE_RANK" MASTER_ADDR="$MASTER_ADDR"
             MASTER_PORT="$MASTER_PORT")
  # Without CUDA, transformers engages DDP only when accelerate is told the run is on CPUs (ACCELERATE_USE_CPU,
  # i.e. TrainingArguments.use_cpu); otherwise every rank trains alone on its own samples. gloo is the CPU backend.
  if [ "$DEVICE" = cpu ]; then
    env_vars+=(ACCELERATE_USE_CPU=true)
    distributed=(--ddp_backend gloo)
  fi
fi

# SKIP_BAD_ROWS=1 trains on the good rows, written next to the run with the list of skipped ones.
train_dataset="$DATASET"
[ "$SKIP_BAD_ROWS" = 1 ] && train_dataset="$OUTPUT_DIR/dataset_checked.jsonl"

cmd=("$SWIFT" rlhf --rlhf_type grpo
  --model "$MODEL_PATH" --model_type phi4_mm_native --external_plugins "$HERE/plugin.py"
  --dataset "$train_dataset" --output_dir "$OUTPUT_DIR" --add_version false
  --tuner_type "$TUNER_TYPE" --torch_dtype "$TORCH_DTYPE" --attn_impl "$ATTN_IMPL"
  --reward_funcs "${reward_funcs[@]}" "${weights[@]}"
  --learning_rate "$LR" --num_generations "$NUM_GENERATIONS" --beta "$BETA" --epsilon "$EPSILON"
  --num_train_epochs "$EPOCHS" --max_steps "$MAX_STEPS" --warmup_ratio "$WARMUP_RATIO"
  --per_device_train_batch_size "$PER_DEVICE_BATCH" --gradient_accumulation_steps "$GRAD_ACCUM"
  --max_completion_length "$MAX_COMPLETION_LENGTH" --max_length "$MAX_LENGTH" --temperature "$TEMPERATURE"
  --dynamic_sample "$DYNAMIC_SAMPLE" --max_resample_times "$MAX_RESAMPLE_TIMES"
  "${vllm[@]}"
  --save_steps "$SAVE_STEPS" --save_total_limit "$SAVE_TOTAL_LIMIT" --logging_steps "$LOGGING_STEPS"
  --log_completions true --report_to "$REPORT_TO" --check_model false --seed "$SEED"
  --dataloader_num_workers "$DATALOADER_WORKERS" --dataset_num_proc "$DATASET_NUM_PROC"
  "${deepspeed[@]}" "${distributed[@]}" "${resume[@]}" "$@")

if [ "$DRY_RUN" = 1 ]; then
  # The same checks as the real run below, with what they would write kept in a folder removed on exit.
  checks="$(mktemp -d)"
  trap 'rm -rf "$checks"' EXIT
else
  checks="$OUTPUT_DIR"
  mkdir -p "$LOG_DIR" "$OUTPUT_DIR"
  # One writer per run folder. fd 9 holds an exclusive lock that every child inherits, so it is released only when
  # the last process of this job exits: a second train.sh on the folder refuses, also while an orphan still writes.
  exec 9>>"$OUTPUT_DIR/.train.lock"
  if ! flock -n 9; then
    die "OUTPUT_DIR=$OUTPUT_DIR is being written by another training job ($(cat "$OUTPUT_DIR/.train.pid" 2>/dev/null \
|| echo 'holder unknown')); stop it, or choose another OUTPUT_DIR"
  fi
  echo "train.sh pid $$ (process group $(ps -o pgid= $$ | tr -d ' ')), started $(date -Is)" > "$OUTPUT_DIR/.train.pid"
  cleanup=('rm -f "$OUTPUT_DIR/.train.pid"')
  # Under train_loop.sh (CHEX_SUPERVISOR_PID, in a process group of its own): if the sweep dies, even by kill -9,
  # this job's whole process group goes with it within a second.
  if [ -n "${CHEX_SUPERVISOR_PID:-}" ]; then
    group="$(ps -o pgid= $$ | tr -d ' ')"
    ( while kill -0 "$CHEX_SUPERVISOR_PID" 2>/dev/null; do sleep 1; done
      echo "train.sh: the sweep (pid $CHEX_SUPERVISOR_PID) is gone: stopping this job" >&2
      kill -KILL -- "-$group" ) 9>&- &
    watchdog=$!
    cleanup+=('kill "$watchdog" 2>/dev/null || true')
  fi
  trap 'for action in "${cleanup[@]}"; do eval "$action"; done' EXIT
fi

# Pre-flight: every row's fields and every image decoded in full (tools/validate_data.py), then every prompt against
# MAX_LENGTH at DYNAMIC_HD crops, before any model loads. DRY_RUN=1 runs the same checks.
checked_dataset="$DATASET"
preflight=("$PYTHON" "$HERE/tools/validate_data.py" "$DATASET" --kind grpo --base-dir "$HERE" --workers "$DATASET_NUM_PROC")
if [ "$SKIP_BAD_ROWS" = 1 ]; then
  checked_dataset="$checks/dataset_checked.jsonl"
  preflight+=(--good-output "$checked_dataset" --skipped-output "$checks/skipped_rows.jsonl")
fi
echo "train.sh: pre-flight check of $DATASET"
"${preflight[@]}" || die "pre-flight check of $DATASET failed: every bad row is listed above (SKIP_BAD_ROWS=1 trains on the good ones)"
[ "$SKIP_BAD_ROWS" = 1 ] && echo "train.sh: SKIP_BAD_ROWS=1: training on $train_dataset; skipped rows in $OUTPUT_DIR/skipped_rows.jsonl"
truncation=()
[ "$ALLOW_TRUNCATION" = 1 ] && truncation=(--allow-truncation)
"$PYTHON" "$HERE/tools/check_prompt_length.py" --model "$MODEL_PATH" --dataset "$checked_dataset" --max_length "$MAX_LENGTH" \
  --dynamic_hd "$DYNAMIC_HD" --report "$checks/prompt_lengths.json" "${truncation[@]}" 2>&1 \
  | grep -E "^(check_prompt_length|error):" || die "prompt-length check failed (see above)"

printf '+ %s' "${env_vars[*]}"; printf ' %q' "${cmd[@]}"; printf '\n'
if [ "$DRY_RUN" = 1 ]; then
  # The run's steps, and its hours at the step time bench/gpu_bench.py measured on this node's GPU (GPU_BENCH).
  "$PYTHON" "$HERE/tools/gpu_plan.py" --bench "$GPU_BENCH" --samples "$(( $(grep -c . "$checked_dataset") * EPOCHS ))" \
    --num_generations "$NUM_GENERATIONS" --gpus "$((NPROC_PER_NODE * NNODES))" --per_device_batch "$PER_DEVICE_BATCH" \
    --grad_accum "$GRAD_ACCUM" --completion_tokens "$MAX_COMPLETION_LENGTH" --dynamic_hd "$DYNAMIC_HD" \
    --max_steps "$MAX_STEPS" | sed 's/^/train.sh: /'
  echo "train.sh: DRY_RUN=1: every check of a real run passed; nothing was trained or written"
  exit 0
fi
log="$LOG_DIR/train_${RUN_NAME}_$(date +%Y%m%d_%H%M%S).log"
echo "train.sh: log $log"
cd "$HERE"
env "${env_vars[@]}" "${cmd[@]}" 2>&1 | tee "$log"
