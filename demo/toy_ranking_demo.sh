#!/usr/bin/env bash
# After demo/toy_demo.sh: look at what the toy model retrieves.
#   1. tools/test.py --show-dir: the SYSU protocol's ranking lists of 20
#      queries (top-10, green = right identity, red = wrong);
#   2. demo/image_demo.py: rank a gallery folder for a query folder with
#      VIReIDInferencer;
#   3. the training curves of the run, per stage.
#   bash demo/toy_ranking_demo.sh [CONFIG] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/eees_toy.py}
WORK_DIR=${2:-work_dirs/toy_demo}
PYTHON=${PYTHON:-python}

if [ ! -f "$WORK_DIR/last_checkpoint" ]; then
    echo "No checkpoint in $WORK_DIR: run 'bash demo/toy_demo.sh' first." >&2
    exit 1
fi
CKPT=$(cat "$WORK_DIR/last_checkpoint")

"$PYTHON" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR/test" \
    --show-dir "$WORK_DIR/rankings"
"$PYTHON" demo/image_demo.py data/toy_sysu/cam3/0004 data/toy_sysu/cam1 \
    "$CONFIG" --weights "$CKPT" --query-modality ir --gallery-modality vis \
    --topk 8 --out-dir "$WORK_DIR/demo_rankings"
"$PYTHON" tools/analysis_tools/analyze_logs.py plot_curve "$WORK_DIR" \
    --out "$WORK_DIR/curves.png"
echo "Ranking lists: $WORK_DIR/rankings/*.png and $WORK_DIR/demo_rankings/*.png"
echo "Curves: $WORK_DIR/curves.png"
