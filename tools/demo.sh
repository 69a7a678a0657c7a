#!/usr/bin/env bash
# `make demo`: the whole pipeline on the embedded default (tiny native Phi-4-MM + synthetic data), CPU only:
#   model + data -> SFT warm-up -> score the pool with our evaluation -> sample hard examples -> evaluate (before)
#   -> GRPO (accuracy + KG rewards, vision LoRA only, through train.sh) -> evaluate (after) -> token probabilities
#   -> KG metrics -> reward curves -> summary.
# Knobs: OUT, MODEL_PATH, DATA_ROOT, SFT_EPOCHS, GRPO_STEPS, HARD_SET_SIZE, MAX_NEW_TOKENS. DRY_RUN is not offered:
# every stage is quick, and train.sh / evaluate.sh have their own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
SWIFT="${SWIFT:-$ROOT/.venv/bin/swift}"
MODEL_PATH="${MODEL_PATH:-$ROOT/checkpoints/tiny-phi4mm}"
DATA_ROOT="${DATA_ROOT:-$ROOT/data/MIMIC-VQA-CoT}"
OUT="${OUT:-$ROOT/demo_out}"
SFT_EPOCHS="${SFT_EPOCHS:-6}"
GRPO_STEPS="${GRPO_STEPS:-40}"
HARD_SET_SIZE="${HARD_SET_SIZE:-96}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-192}"
export DYNAMIC_HD="${DYNAMIC_HD:-4}"   # image crops for SFT, GRPO and evaluation alike (train.sh and evaluate.py read it)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false CUDA_VISIBLE_DEVICES=""
POOL="$DATA_ROOT/annotations/eval/valid_all_vqa.json"
EVAL=(--max_new_tokens "$MAX_NEW_TOKENS" --batch_size 16 --torch_dtype float32)
start=$(date +%s)

step() { printf '\n== [%ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }
run() { printf '+'; printf ' %q' "$@"; printf '\n'; "$@"; }
cd "$ROOT"

step "1. tiny model and synthetic data (built if absent)"
[ -f "$MODEL_PATH/model.safetensors" ] || run "$PY" tools/make_tiny_model.py --output "$MODEL_PATH"
[ -f "$POOL" ] || run "$PY" tools/make_demo_data.py --root "$DATA_ROOT"
run "$PY" tools/validate_data.py "$DATA_ROOT"/annotations/eval/*.json --img_root "$DATA_ROOT/images" --pool
rm -rf "$OUT"
mkdir -p "$OUT"

step "2. SFT warm-up on the pool's explanations, so the model writes <think>…</think><answer>…</answer>"
run "$PY" tools/convert_to_grpo.py --sft --annotations "$POOL" --img_root "$DATA_ROOT/images" --output "$OUT/sft.jsonl"
run "$SWIFT" sft --model "$MODEL_PATH" --model_type phi4_mm_native --external_plugins "$ROOT/plugin.py" \
  --dataset "$OUT/sft.jsonl" --tuner_type full --freeze_vit false --torch_dtype float32 \
  --num_train_epochs "$SFT_EPOCHS" --learning_rate 3e-3 --warmup_ratio 0.05 --per_device_train_batch_size 8 \
  --max_length 1024 --gradient_checkpointing false --save_strategy epoch --save_total_limit 1 --logging_steps 10 --output_dir "$OUT/sft" \
  --add_version false --check_model false --dataset_num_proc 1 --dataloader_num_workers 0 --report_to none \
  > "$OUT/sft.log" 2>&1 || { tail -n 40 "$OUT/sft.log"; exit 1; }
SFT_MODEL="$(ls -d "$OUT"/sft/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -n 1 || true)"
[ -n "$SFT_MODEL" ] || { echo "no SFT checkpoint in $OUT/sft" >&2; exit 1; }
echo "SFT checkpoint: $SFT_MODEL"

step "3. hard-example mining: score the pool with the SFT model, keep what it gets wrong"
run "$PY" evaluate.py --model_path "$SFT_MODEL" --annotation_file "$POOL" --img_root "$DATA_ROOT/images" \
  --output_dir "$OUT/eval_pool" "${EVAL[@]}" > "$OUT/eval_pool.log" 2>&1 || { tail -n 40 "$OUT/eval_pool.log"; exit 1; }
run "$PY" tools/set_is_correct.py --pool "$POOL" --results "$OUT/eval_pool/valid_all_vqa/results.json" \
  --metric strict --output "$OUT/pool_scored.json"
run "$PY" tools/sample_data.py --data_root "$OUT/data" --pool "$OUT/pool_scored.json" --img_root "$DATA_ROOT/images" \
  --sample_types hard_uniform --sizes "$HARD_SET_SIZE" --allow-short

step "4. evaluation before GRPO"
run "$PY" evaluate.py --model_path "$SFT_MODEL" --data_root "$DATA_ROOT" --output_dir "$OUT/eval_before" "${EVAL[@]}" \
  > "$OUT/eval_before.log" 2>&1 || { tail -n 40 "$OUT/eval_before.log"; exit 1; }

step "5. GRPO through train.sh: external_r1v_acc + external_kg_jac, FREEZE_NON_VISION_PARAMS=1 (demo-sized knobs)"
MODEL_PATH="$SFT_MODEL" DATASET="$OUT/data/annotations/hard_uniform/$HARD_SET_SIZE.jsonl" OUTPUT_DIR="$OUT/grpo" \
  LOG_DIR="$OUT/logs" MAX_STEPS="$GRPO_STEPS" LR=1e-3 BETA=0.04 NUM_GENERATIONS=4 PER_DEVICE_BATCH=8 \
  MAX_COMPLETION_LENGTH=160 TEMPERATURE=1.0 DYNAMIC_SAMPLE=false SAVE_STEPS="$GRPO_STEPS" WARMUP_RATIO=0 \
  DATALOADER_WORKERS=0 DATASET_NUM_PROC=1 run bash "$ROOT/train.sh" > "$OUT/grpo.log" 2>&1 \
  || { tail -n 40 "$OUT/grpo.log"; exit 1; }
grep -E "^\+ |FREEZE_NON_VISION_PARAMS:" "$OUT/grpo.log" | cut -c1-240
GRPO_MODEL="$OUT/grpo/checkpoint-$GRPO_STEPS"

step "6. evaluation after GRPO"
run "$PY" evaluate.py --model_path "$GRPO_MODEL" --data_root "$DATA_ROOT" --output_dir "$OUT/eval_after" "${EVAL[@]}" \
  > "$OUT/eval_after.log" 2>&1 || { tail -n 40 "$OUT/eval_after.log"; exit 1; }

step "7. token probabilities (test_basic) and KG metrics"
run "$PY" evaluate_token_prob.py --model_path "$GRPO_MODEL" --data_root "$DATA_ROOT" --splits test_basic \
  --output_dir "$OUT/token_prob" "${EVAL[@]}" > "$OUT/token_prob.log" 2>&1 || { tail -n 40 "$OUT/token_prob.log"; exit 1; }
for when in before after; do
  run bash tools/get_kg_metric.sh "$OUT/eval_$when/test_basic/results.json" "$OUT/kg_$when" > "$OUT/kg_$when.log" 2>&1 \
    || { tail -n 20 "$OUT/kg_$when.log"; exit 1; }
done

step "8. reward curves"
run "$PY" tools/plot_training.py "$OUT/grpo"

step "done in $(( $(date +%s) - start )) s"
"$PY" tools/demo_summary.py "$OUT"
