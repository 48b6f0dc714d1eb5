#!/usr/bin/env bash
# The toy demo: synthetic SYSU-layout data, a tiny random-init CLIP, the full
# two-stage recipe (prompt learning on cached features, then fine-tuning) and
# the 10-trial SYSU-MM01 evaluation. Runs on a CPU in a few minutes.
#   bash demo/toy_demo.sh [CONFIG] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/clip_vireid_toy.py}
WORK_DIR=${2:-work_dirs/toy_demo}
PYTHON=${PYTHON:-python}

if [ ! -f data/toy_sysu/exp/test_id.txt ]; then
    "$PYTHON" tools/dataset_converters/make_toy_vireid.py --layout sysu \
        --out data/toy_sysu --num-ids 64
fi
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
