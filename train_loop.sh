#!/usr/bin/env bash
# A GRPO sweep: SAMPLE_TYPES x DATASET_SIZES x LEARNING_RATES x NUM_GENERATIONS x BETAS, one train.sh run each.
# Datasets are read exactly where tools/sample_data.py writes them: $DATA_ROOT/annotations/<type>/<size>.jsonl.
# All missing datasets are listed before anything trains. A finished run leaves <output>/.done; re-running the sweep
# skips finished runs and resumes an interrupted one from its last checkpoint. DRY_RUN=1 prints the plan.
# Every train.sh knob (MODEL_PATH, PER_DEVICE_BATCH, NPROC_PER_NODE, DEEPSPEED, ...) passes through the environment;
# arguments after -- go to ms-swift.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

DATA_ROOT="${DATA_ROOT:-$HERE/data/MIMIC-VQA-CoT}"
SAMPLE_TYPES="${SAMPLE_TYPES:-hard_uniform uniform}"
DATASET_SIZES="${DATASET_SIZES:-1000 2000 5000}"
LEARNING_RATES="${LEARNING_RATES:-4e-6}"
NUM_GENERATIONS="${NUM_GENERATIONS:-8}"
BETAS="${BETAS:-0.5}"
OUTPUT_ROOT="${OUTPUT_ROOT:-$HERE/output/sweep}"
DRY_RUN="${DRY_RUN:-0}"
PYTHON="${PYTHON:-$( [ -x "$HERE/.venv/bin/python" ] && echo "$HERE/.venv/bin/python" || echo python3 )}"
export DATA_ROOT DRY_RUN
# Every knob's type and range (the sweep axes and what it passes to train.sh), before the plan (utils/knobs.py).
# shellcheck source=tools/knobs.sh
source "$HERE/tools/knobs.sh"
check_knobs train_loop

missing=()
for type in $SAMPLE_TYPES; do
  for size in $DATASET_SIZES; do
    dataset="$DATA_ROOT/annotations/$type/$size.jsonl"
    if [ ! -f "$dataset" ]; then missing+=("$dataset")
    elif ! grep -q . "$dataset"; then missing+=("$dataset (empty)")
    fi
  done
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "train_loop.sh: ${#missing[@]} dataset(s) of the sweep are missing or empty (build them with tools/sample_data.py):" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 2
fi
[ -f "${MODEL_PATH:-$HERE/checkpoints/chex-phi4mm-sft}/config.json" ] || { echo "train_loop.sh: \
MODEL_PATH=${MODEL_PATH:-$HERE/checkpoints/chex-phi4mm-sft}: no checkpoint there (no config.json); convert microsoft's \
SFT checkpoint with tools/convert_phi4mm_checkpoint.py" >&2; exit 2; }

# The plan: every run's real row count. A set drawn with --allow-short can hold fewer rows than its file name says;
# such a run is marked here and in the final table, never trained silently under the bigger name.
echo "train_loop.sh: the sweep's datasets:"
for type in $SAMPLE_TYPES; do
  for size in $DATASET_SIZES; do
    dataset="$DATA_ROOT/annotations/$type/$size.jsonl"
    rows="$(grep -c . "$dataset" || true)"
    mark=""; [ "$rows" -lt "$size" ] && mark="  SHORT: $rows of $size rows (drawn with --allow-short)"
    echo "  $type/$size.jsonl: $rows rows$mark"
  done
done

summary=()
failed=0
for type in $SAMPLE_TYPES; do
  for size in $DATASET_SIZES; do
    for lr in $LEARNING_RATES; do
      for gens in $NUM_GENERATIONS; do
        for beta in $BETAS; do
          name="${type}_${size}_lr${lr}_g${gens}_beta${beta}"
          out="$OUTPUT_ROOT/$name"
          set_file="$DATA_ROOT/annotations/$type/$size.jsonl"
          if [ -f "$out/.done" ]; then
            echo "== $name: finished earlier, skipped"
            summary+=("$name"$'\t'"done (earlier)"$'\t'"$out"$'\t'"$set_file"$'\t'"$size")
            continue
          fi
          resume=0
          compgen -G "$out/checkpoint-*" >/dev/null && resume=1
          echo "== $name$([ "$resume" = 1 ] && echo ": resuming")"
          # Each job runs in a process group of its own that dies with the sweep: a signal to the sweep is
          # passed on to the group, and train.sh's watchdog kills the group if the sweep dies by kill -9.
          RUN_NAME="$name" DATASET="$set_file" OUTPUT_DIR="$out" LR="$lr" \
            NUM_GENERATIONS="$gens" BETA="$beta" RESUME="$resume" CHEX_SUPERVISOR_PID="$$" \
            setsid "$HERE/train.sh" "$@" &
          job=$!
          trap 'kill -TERM -- "-$job" 2>/dev/null; wait "$job"; exit 143' TERM
          trap 'kill -INT -- "-$job" 2>/dev/null; wait "$job"; exit 130' INT
          status=0
          wait "$job" || status=$?
          trap - TERM INT
          if [ "$status" = 0 ]; then
            if [ "$DRY_RUN" = 1 ]; then
              summary+=("$name"$'\t'"planned"$'\t'"$out"$'\t'"$set_file"$'\t'"$size")
            else
              touch "$out/.done"
              summary+=("$name"$'\t'"done"$'\t'"$out"$'\t'"$set_file"$'\t'"$size")
            fi
          else
            failed=$((failed + 1))
            summary+=("$name"$'\t'"FAILED"$'\t'"$out"$'\t'"$set_file"$'\t'"$size")
          fi
        done
      done
    done
  done
done

echo
"$PYTHON" "$HERE/tools/sweep_summary.py" "${summary[@]}"
[ "$failed" -eq 0 ] || { echo "train_loop.sh: $failed run(s) failed; re-run to resume them" >&2; exit 1; }
