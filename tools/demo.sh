#!/usr/bin/env bash
# `make demo`: the whole pipeline on a tiny native Phi-4-MM and synthetic data, CPU only:
#   model + data -> SFT warm-up -> score the pool with our evaluation -> sample hard examples -> evaluate (before)
#   -> GRPO (accuracy + KG rewards, vision LoRA only, through train.sh) -> evaluate (after) -> token probabilities
#   -> KG metrics -> reward curves -> the completions page and the SFT-vs-GRPO pages -> summary.
# The tiny model and the synthetic data are built fresh in $OUT on every run (a few seconds), so no run reads a
# stale model or dataset; MODEL_PATH / DATA_ROOT point the demo at existing ones instead.
# The SFT explanations are written by a teacher with stated error rates (TEACHER_UNDER_CALL, TEACHER_WRONG_SIDE,
# TEACHER_CONTRADICTION; tools/make_demo_data.py), so the SFT model is unsure where GRPO's true references can teach it.
# Knobs: OUT, SEED, MODEL_PATH, DATA_ROOT, POOL_SIZE, TEST_SIZE, SFT_EPOCHS, SFT_LR, GRPO_STEPS, GRPO_LR, the teacher's
# rates, HEADROOM_SAMPLES (samples per item at the GRPO temperature, for headroom before and after), SAMPLE_TYPE,
# GRPO_REWARDS, ABLATION (1: also GRPO with external_r1v_acc alone from the same SFT model, into grpo_acc/ and
# eval_after_acc/, as bench/learning_bench.py runs it),
# HARD_SET_SIZE, MAX_NEW_TOKENS, LEARNING_ONLY (1: stop after the evaluation after GRPO, as bench/learning_bench.py
# does), PROGRESS_EVERY (seconds between progress lines of the long stages), DEMO_OVERWRITE (1: replace an OUT the
# demo did not make). DRY_RUN is not offered: every stage is quick, and train.sh / evaluate.sh have their own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
SWIFT="${SWIFT:-$ROOT/.venv/bin/swift}"
OUT="${OUT:-$ROOT/demo_out}"
SEED="${SEED:-0}"
MODEL_PATH="${MODEL_PATH:-}"
DATA_ROOT="${DATA_ROOT:-}"
POOL_SIZE="${POOL_SIZE:-600}"
TEST_SIZE="${TEST_SIZE:-128}"
SFT_EPOCHS="${SFT_EPOCHS:-20}"
SFT_LR="${SFT_LR:-3e-3}"
GRPO_STEPS="${GRPO_STEPS:-120}"
GRPO_LR="${GRPO_LR:-1e-3}"
HARD_SET_SIZE="${HARD_SET_SIZE:-96}"
SAMPLE_TYPE="${SAMPLE_TYPE:-learnable}"
GRPO_REWARDS="${GRPO_REWARDS:-external_r1v_acc external_kg_jac}"
ABLATION="${ABLATION:-0}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-64}"
LEARNING_ONLY="${LEARNING_ONLY:-0}"
TEACHER_UNDER_CALL="${TEACHER_UNDER_CALL:-0.6}"
TEACHER_WRONG_SIDE="${TEACHER_WRONG_SIDE:-0.6}"
TEACHER_CONTRADICTION="${TEACHER_CONTRADICTION:-0.5}"
GRPO_TEMPERATURE=1.0
GRPO_GENERATIONS=4
HEADROOM_SAMPLES="${HEADROOM_SAMPLES:-$GRPO_GENERATIONS}"
# One process runs at a time: it gets every core. With another torch process on the machine, OMP_NUM_THREADS=1
# avoids oversubscription (README, "Launchers").
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
export DYNAMIC_HD="${DYNAMIC_HD:-4}"   # image crops for SFT, GRPO and evaluation alike (train.sh and evaluate.py read it)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false CUDA_VISIBLE_DEVICES=""
EVAL=(--max_new_tokens "$MAX_NEW_TOKENS" --batch_size 16 --torch_dtype float32)
start=$(date +%s)

step() { printf '\n== [%ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }
run() { printf '+'; printf ' %q' "$@"; printf '\n'; "$@"; }
# logged LOG CMD...: run CMD with its output in LOG, printing LOG's latest progress line every PROGRESS_EVERY seconds
# (the long stages would otherwise be silent for minutes); on failure, the end of LOG and exit 1.
PROGRESS_EVERY="${PROGRESS_EVERY:-10}"
logged() {
  local log="$1" job status=0 waited=0; shift
  printf '+'; printf ' %q' "$@"; printf ' > %q\n' "$log"
  "$@" > "$log" 2>&1 &
  job=$!
  while kill -0 "$job" 2>/dev/null; do
    sleep 1; waited=$((waited + 1))
    if [ $((waited % PROGRESS_EVERY)) = 0 ]; then
      printf '   ... %ss: %s\n' "$waited" "$(tr '\r' '\n' < "$log" | grep -v '^[[:space:]]*$' | tail -n 1 | cut -c1-110)"
    fi
  done
  wait "$job" || status=$?
  [ "$status" = 0 ] || { tail -n 40 "$log"; echo "demo: failed (exit $status); the whole log: $log" >&2; exit 1; }
}
cd "$ROOT"

step "1. tiny model and synthetic data (seed $SEED)"
# Only a folder this demo made is cleared: a user's folder named by OUT is never deleted without DEMO_OVERWRITE=1.
MARKER="$OUT/.made-by-chex-demo"
if [ -d "$OUT" ] && [ -n "$(ls -A "$OUT")" ] && [ ! -f "$MARKER" ] && [ "${DEMO_OVERWRITE:-0}" != 1 ]; then
  echo "demo: OUT=$OUT exists and was not made by the demo; choose another OUT, or DEMO_OVERWRITE=1 to replace it" >&2
  exit 2
fi
rm -rf "$OUT"
mkdir -p "$OUT"
touch "$MARKER"
if [ -z "$MODEL_PATH" ]; then
  MODEL_PATH="$OUT/tiny-phi4mm"
  run "$PY" tools/make_tiny_model.py --output "$MODEL_PATH" --seed "$SEED"
fi
if [ -z "$DATA_ROOT" ]; then
  DATA_ROOT="$OUT/synthetic-data"
  run "$PY" tools/make_demo_data.py --root "$DATA_ROOT" --seed "$SEED" --pool-size "$POOL_SIZE" --test-size "$TEST_SIZE" \
    --teacher-under-call "$TEACHER_UNDER_CALL" --teacher-wrong-side "$TEACHER_WRONG_SIDE" \
    --teacher-contradiction "$TEACHER_CONTRADICTION"
fi
POOL="$DATA_ROOT/annotations/eval/valid_all_vqa.json"
# The teacher's explanations when the data has them (teacher.json says the rates), else the pool's own.
SFT_ANNOTATIONS="$DATA_ROOT/annotations/sft/valid_all_vqa.json"
[ -f "$SFT_ANNOTATIONS" ] || SFT_ANNOTATIONS="$POOL"
run "$PY" tools/validate_data.py "$DATA_ROOT"/annotations/eval/*.json --img_root "$DATA_ROOT/images" --pool

step "2. SFT warm-up on the teacher's explanations of the pool, so the model writes <think>…</think><answer>…</answer>"
run "$PY" tools/convert_to_grpo.py --sft --annotations "$SFT_ANNOTATIONS" --img_root "$DATA_ROOT/images" --output "$OUT/sft.jsonl"
logged "$OUT/sft.log" "$SWIFT" sft --model "$MODEL_PATH" --model_type phi4_mm_native --external_plugins "$ROOT/plugin.py" \
  --dataset "$OUT/sft.jsonl" --tuner_type full --freeze_vit false --torch_dtype float32 \
  --num_train_epochs "$SFT_EPOCHS" --learning_rate "$SFT_LR" --warmup_ratio 0.05 --seed "$SEED" \
  --per_device_train_batch_size 8 \
  --max_length 1024 --gradient_checkpointing false --save_strategy epoch --save_total_limit 1 --logging_steps 10 --output_dir "$OUT/sft" \
  --add_version false --check_model false --dataset_num_proc 1 --dataloader_num_workers 0 --report_to none
SFT_MODEL="$(ls -d "$OUT"/sft/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -n 1 || true)"
[ -n "$SFT_MODEL" ] || { echo "no SFT checkpoint in $OUT/sft" >&2; exit 1; }
echo "SFT checkpoint: $SFT_MODEL"

step "3. hard-example mining: score the pool with the SFT model (greedy, and samples for headroom), keep what it can learn"
# Headroom: HEADROOM_SAMPLES samples per item at the temperature GRPO draws at. `learnable` keeps the items wrong at
# greedy but right in some sample: GRPO's groups on them are mixed, so the accuracy reward has an advantage to give.
HEADROOM=(--num_samples "$HEADROOM_SAMPLES" --temperature "$GRPO_TEMPERATURE")
logged "$OUT/eval_pool.log" "$PY" evaluate.py --model_path "$SFT_MODEL" --annotation_file "$POOL" \
  --img_root "$DATA_ROOT/images" --output_dir "$OUT/eval_pool" "${EVAL[@]}" "${HEADROOM[@]}"
run "$PY" tools/set_is_correct.py --pool "$POOL" --results "$OUT/eval_pool/valid_all_vqa/results.json" \
  --metric strict --output "$OUT/pool_scored.json"
run "$PY" tools/sample_data.py --data_root "$OUT/data" --pool "$OUT/pool_scored.json" --img_root "$DATA_ROOT/images" \
  --sample_types "$SAMPLE_TYPE" --sizes "$HARD_SET_SIZE" --allow-short

step "4. evaluation before GRPO"
logged "$OUT/eval_before.log" "$PY" evaluate.py --model_path "$SFT_MODEL" --data_root "$DATA_ROOT" \
  --output_dir "$OUT/eval_before" "${EVAL[@]}" "${HEADROOM[@]}"

# grpo_arm NAME REWARDS: GRPO from the SFT checkpoint with REWARDS into $OUT/grpo<NAME>, then the evaluation after it
# into $OUT/eval_after<NAME>. The demo's MAX_NEW_TOKENS is no train.sh knob (train.sh would take it for a misspelt
# MAX_COMPLETION_LENGTH).
grpo_arm() {
  local name="$1" rewards="$2"
  MODEL_PATH="$SFT_MODEL" DATASET="$OUT/data/annotations/$SAMPLE_TYPE/$HARD_SET_SIZE.jsonl" \
    OUTPUT_DIR="$OUT/grpo$name" LOG_DIR="$OUT/logs$name" REWARD_FUNCS="$rewards" MAX_STEPS="$GRPO_STEPS" \
    LR="$GRPO_LR" BETA=0.04 NUM_GENERATIONS="$GRPO_GENERATIONS" PER_DEVICE_BATCH=16 \
    MAX_COMPLETION_LENGTH="$MAX_NEW_TOKENS" TEMPERATURE="$GRPO_TEMPERATURE" DYNAMIC_SAMPLE=false \
    SAVE_STEPS="$GRPO_STEPS" WARMUP_RATIO=0 SEED="$SEED" DATALOADER_WORKERS=0 DATASET_NUM_PROC=1 \
    logged "$OUT/grpo$name.log" env -u MAX_NEW_TOKENS bash "$ROOT/train.sh"
  grep -E "^\+ |FREEZE_NON_VISION_PARAMS:" "$OUT/grpo$name.log" | cut -c1-240
  logged "$OUT/eval_after$name.log" "$PY" evaluate.py --model_path "$OUT/grpo$name/checkpoint-$GRPO_STEPS" \
    --data_root "$DATA_ROOT" --output_dir "$OUT/eval_after$name" "${EVAL[@]}" "${HEADROOM[@]}"
}

step "5. GRPO through train.sh ($GRPO_REWARDS; FREEZE_NON_VISION_PARAMS=1; demo-sized knobs), then evaluation"
grpo_arm "" "$GRPO_REWARDS"
GRPO_MODEL="$OUT/grpo/checkpoint-$GRPO_STEPS"
if [ "$ABLATION" = 1 ]; then
  step "5b. the ablation arm: GRPO from the same SFT checkpoint with external_r1v_acc alone, then evaluation"
  grpo_arm _acc "external_r1v_acc"
fi

if [ "$LEARNING_ONLY" = 1 ]; then
  step "done in $(( $(date +%s) - start )) s (LEARNING_ONLY=1)"
  "$PY" tools/demo_summary.py "$OUT" --data_root "$DATA_ROOT"
  exit 0
fi

step "6. token probabilities (test_basic) and KG metrics"
logged "$OUT/token_prob.log" "$PY" evaluate_token_prob.py --model_path "$GRPO_MODEL" --data_root "$DATA_ROOT" \
  --splits test_basic --output_dir "$OUT/token_prob" "${EVAL[@]}"
for when in before after; do
  logged "$OUT/kg_$when.log" bash tools/get_kg_metric.sh "$OUT/eval_$when/test_basic/results.json" "$OUT/kg_$when"
done

step "7. reward curves, what GRPO rewarded (completions page), what it changed (SFT vs GRPO pages)"
run "$PY" tools/plot_training.py "$OUT/grpo"
run "$PY" tools/completions_report.py "$OUT/grpo"
for split in test_basic test_compare test_region; do
  run "$PY" tools/compare_runs.py "$OUT/eval_before/$split" "$OUT/eval_after/$split" --labels SFT GRPO \
    --output "$OUT/compare/$split.html"
done

step "done in $(( $(date +%s) - start )) s"
"$PY" tools/demo_summary.py "$OUT" --data_root "$DATA_ROOT"
