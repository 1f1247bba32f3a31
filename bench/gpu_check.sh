#!/usr/bin/env bash
# The GPU figures in one run of under 10 minutes:
#   bash ../shared/gpu/prepare.sh                         # here: photos + Keras wheels into .gpu/
#   device run: carry [".gpu"], command "bash bench/gpu_check.sh", timeout_s 590
# 1. bench/train_speed.py on all TrashNet photos (224 px, bf16, JAX): loader cold/warm per thread count,
#    the synthetic train step before and after train.py, train.py's whole steady epochs (validation and saves
#    included) and where their time goes; the headline ratio whole epochs / step; the null-model host path.
# 2. the from-scratch recipe, one train.py run per --augment preset, each cut at RECIPE_S seconds of wall
#    time (compilation included) with a 30% validation share: history.csv says how far each got.
# Figures land in $OUT (speed.txt/json, recipe_<preset>.txt/csv/json). Settings by environment:
# DATA SIZE PREC EPOCHS PER_CLASS PRESETS RECIPE_S RECIPE_EPOCHS PYTHON.
set -uo pipefail
[ -f .gpu/setup.sh ] && { source .gpu/setup.sh || exit 1; }
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
DATA=${DATA:-.gpu/trashnet_v2/train_data_v2}
SIZE=${SIZE:-224}; PREC=${PREC:-bfloat16}; EPOCHS=${EPOCHS:-6}; PER_CLASS=${PER_CLASS:-0}
PRESETS=${PRESETS:-"flip original"}; RECIPE_S=${RECIPE_S:-150}; RECIPE_EPOCHS=${RECIPE_EPOCHS:-60}
PY=${PYTHON:-python3}
echo "== speed"
timeout 240 $PY bench/train_speed.py --data_dir "$DATA" --per_class "$PER_CLASS" --input_size "$SIZE" --batch_size 64 \
  --mixed_precision "$PREC" --epochs "$EPOCHS" --rounds 1 --threads 1,2,8,16 --host_path --json "$OUT/speed.json" 2>&1 \
  | tee "$OUT/speed.txt"
for preset in $PRESETS; do
  echo "== recipe --augment $preset, $RECIPE_S s"
  run=/tmp/gpu_check_$preset
  timeout "$RECIPE_S" $PY train.py --data_dir "$DATA" --weights none --input_size "$SIZE" --batch_size 64 \
    --learning_rate 2e-3 --epochs "$RECIPE_EPOCHS" --patience 1000 --mixed_precision "$PREC" --augment "$preset" \
    --val_split 0.3 --no_resume --output_dir "$run" > "$OUT/recipe_$preset.txt" 2>&1
  echo "exit $? (124 = cut at $RECIPE_S s)" >> "$OUT/recipe_$preset.txt"
  tail -3 "$OUT/recipe_$preset.txt"
  for f in "$run/history.csv" "$run/.history_scratch.csv"; do [ -f "$f" ] && cp "$f" "$OUT/recipe_$preset.csv" && break; done
  [ -f "$run/report.json" ] && cp "$run/report.json" "$OUT/recipe_$preset.json"
  $PY - "$run" <<'PY' | tee -a "$OUT/recipe_$preset.txt"
import csv, os, sys
done = os.path.join(sys.argv[1], "history.csv")  # epochs from 1; while running, Keras' own file from 0
path, shift = (done, 0) if os.path.exists(done) else (os.path.join(sys.argv[1], ".history_scratch.csv"), 1)
rows = list(csv.DictReader(open(path))) if os.path.exists(path) else []
if rows:
    best = max(rows, key=lambda r: float(r.get("val_accuracy", 0) or 0))
    print(f"epochs {len(rows)}, best val_accuracy {float(best['val_accuracy']):.4f} at epoch "
          f"{int(float(best['epoch'])) + shift}, last {float(rows[-1]['val_accuracy']):.4f}")
PY
done
