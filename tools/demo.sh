#!/usr/bin/env bash
# The main job on the embedded default: make the digits benchmark, train RetinaNet (focal loss) through
# `mim train`, evaluate it on the test split with mmdet's CocoMetric through `mim test`, and print the
# COCO table. Run after tools/setup_env.sh (the README's command does both). Other configs, e.g.
#   DEMO_CONFIGS="retinanet_focal retinanet_ghm retinanet_cb_focal" bash tools/demo.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export PATH="$repo/.venv/bin:$PATH"
configs=${DEMO_CONFIGS:-"retinanet_focal"}
out=${DEMO_WORK_DIR:-work_dirs/demo}
mkdir -p "$out"

python tools/make_benchmark.py --source mnist --seed 0
for name in $configs; do
  work="$out/$name"
  mim train mmreweight "configs/$name.py" --work-dir "$work" ${DEMO_TRAIN_ARGS:-}
  ckpt=$(cat "$work/last_checkpoint")
  mim test mmreweight "configs/$name.py" --checkpoint "$ckpt" --work-dir "$work" \
    --metrics-out "$work/test_metrics.json" ${DEMO_TEST_ARGS:-}
done

echo
echo "COCO bbox metrics on the test split (mmdet CocoMetric / pycocotools):"
python tools/summarize_metrics.py $(for name in $configs; do echo "$out/$name/test_metrics.json"; done) --per-class
