#!/usr/bin/env bash
# The vLLM rollout server for `VLLM_MODE=server ./train.sh`: `swift rollout` with our plugin (phi4_mm_native on vLLM,
# swift_patches/vllm_phi4mm.py), on GPUs of its own. Start it first, with the training's MODEL_PATH and DYNAMIC_HD:
#   CUDA_VISIBLE_DEVICES=6,7 VLLM_TENSOR_PARALLEL_SIZE=2 MODEL_PATH=... tools/rollout_server.sh
#   CUDA_VISIBLE_DEVICES=0,1,2,3,4,5 NPROC_PER_NODE=6 USE_VLLM=true VLLM_MODE=server MODEL_PATH=... ./train.sh
# DRY_RUN=1 makes the checks and prints the command.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

MODEL_PATH="${MODEL_PATH:-$HERE/checkpoints/chex-phi4mm-sft}"
DYNAMIC_HD="${DYNAMIC_HD:-4}"                        # must be the training's: the image token counts depend on it
MAX_LENGTH="${MAX_LENGTH:-4096}"                     # prompt + completion tokens, as train.sh's MAX_LENGTH
TORCH_DTYPE="${TORCH_DTYPE:-auto}"                   # auto: bfloat16 on CUDA, float32 on CPU
VLLM_GPU_MEMORY_UTILIZATION="${VLLM_GPU_MEMORY_UTILIZATION:-0.9}"  # the server has its GPUs to itself
VLLM_TENSOR_PARALLEL_SIZE="${VLLM_TENSOR_PARALLEL_SIZE:-1}"
VLLM_SERVER_HOST="${VLLM_SERVER_HOST:-0.0.0.0}"
VLLM_SERVER_PORT="${VLLM_SERVER_PORT:-8000}"
DRY_RUN="${DRY_RUN:-0}"
PYTHON="${PYTHON:-$( [ -x "$HERE/.venv-vllm/bin/python" ] && echo "$HERE/.venv-vllm/bin/python" || echo python3 )}"
SWIFT="${SWIFT:-$( [ -x "$HERE/.venv-vllm/bin/swift" ] && echo "$HERE/.venv-vllm/bin/swift" || echo swift )}"

die() { echo "rollout_server.sh: $*" >&2; exit 2; }
# shellcheck source=tools/knobs.sh
source "$HERE/tools/knobs.sh"
check_knobs rollout_server
[ -f "$MODEL_PATH/config.json" ] || die "MODEL_PATH=$MODEL_PATH: no checkpoint there (no config.json)"
"$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)" 2>/dev/null \
  || die "$PYTHON has no vLLM; build its environment with \`make venv-vllm\` (.venv-vllm)"
precision="$(cd "$HERE" && "$PYTHON" -m utils.precision "$TORCH_DTYPE" auto auto)" || die "cannot resolve TORCH_DTYPE"
read -r TORCH_DTYPE _ DEVICE _ <<<"$precision"
env_vars=(DYNAMIC_HD="$DYNAMIC_HD" HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}")
while IFS= read -r line; do env_vars+=("$line"); done < <(cd "$HERE" && "$PYTHON" -m utils.vllm_env "$DEVICE")

cmd=("$SWIFT" rollout --model "$MODEL_PATH" --model_type phi4_mm_native --external_plugins "$HERE/plugin.py"
  --torch_dtype "$TORCH_DTYPE" --vllm_max_model_len "$MAX_LENGTH"
  --vllm_gpu_memory_utilization "$VLLM_GPU_MEMORY_UTILIZATION" --vllm_tensor_parallel_size "$VLLM_TENSOR_PARALLEL_SIZE"
  --host "$VLLM_SERVER_HOST" --port "$VLLM_SERVER_PORT")
# On a CPU (vLLM's CPU build, one engine) it serves rollouts; training against it needs a GPU (NCCL weight sync).
if [ "$DEVICE" = cpu ]; then cmd+=(--vllm_enforce_eager true); fi
cmd+=("$@")
printf '+ %s' "${env_vars[*]}"; printf ' %q' "${cmd[@]}"; printf '\n'
if [ "$DRY_RUN" = 1 ]; then
  echo "rollout_server.sh: DRY_RUN=1: every check passed; nothing was started"
  exit 0
fi
cd "$HERE"
exec env "${env_vars[@]}" "${cmd[@]}"
