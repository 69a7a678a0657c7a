#!/usr/bin/env bash
# `make demo`: the whole pipeline on the embedded default (tiny native Phi-4-MM + synthetic data), on CPU.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
SWIFT="${SWIFT:-$ROOT/.venv/bin/swift}"
MODEL_PATH="${MODEL_PATH:-$ROOT/checkpoints/tiny-phi4mm}"
DATA_ROOT="${DATA_ROOT:-$ROOT/data/MIMIC-VQA-CoT}"
OUT="${OUT:-$ROOT/demo_out}"
GRPO_STEPS="${GRPO_STEPS:-4}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false CUDA_VISIBLE_DEVICES=""

step() { printf '\n== %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

step "1. tiny model and synthetic data (built if absent)"
[ -f "$MODEL_PATH/model.safetensors" ] || run "$PY" "$ROOT/tools/make_tiny_model.py" --output "$MODEL_PATH"
[ -f "$DATA_ROOT/annotations/eval/valid_all_vqa.json" ] || run "$PY" "$ROOT/tools/make_demo_data.py" --root "$DATA_ROOT"

step "2. GRPO training rows from the validation pool"
mkdir -p "$OUT"
run "$PY" - "$DATA_ROOT" "$OUT/train.jsonl" <<'PYEOF'
import json, sys
from pathlib import Path
sys.path.insert(0, ".")
from utils.grpo_rows import annotation_to_grpo_row
from utils.io import atomic_write_jsonl
root, out = Path(sys.argv[1]), sys.argv[2]
rows = json.loads((root / "annotations/eval/valid_all_vqa.json").read_text())
atomic_write_jsonl(out, [annotation_to_grpo_row(r, root / "images") for r in rows])
PYEOF

step "3. short GRPO run (accuracy + KG rewards, vision LoRA only)"
rm -rf "$OUT/grpo"
(cd "$ROOT" && FREEZE_NON_VISION_PARAMS=1 run "$SWIFT" rlhf --rlhf_type grpo --model "$MODEL_PATH" --model_type phi4_mm_native \
  --dataset "$OUT/train.jsonl" --external_plugins "$ROOT/plugin.py" --reward_funcs external_r1v_acc external_kg_jac external_format \
  --tuner_type full --torch_dtype float32 --use_vllm false --num_generations 4 --per_device_train_batch_size 4 \
  --max_completion_length 32 --max_steps "$GRPO_STEPS" --learning_rate 1e-4 --logging_steps 1 \
  --save_steps "$GRPO_STEPS" --log_completions true --report_to none --check_model false --dataset_num_proc 1 \
  --dataloader_num_workers 0 --add_version false --output_dir "$OUT/grpo")

step "summary"
echo "model:            $MODEL_PATH"
echo "data:             $DATA_ROOT"
echo "GRPO rows:        $OUT/train.jsonl"
echo "GRPO run:         $OUT/grpo (logging.jsonl, completions.jsonl, checkpoint-$GRPO_STEPS/)"
