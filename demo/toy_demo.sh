#!/usr/bin/env bash
# The toy demo: EEES, the flagship, through both stages on a CPU.
#   1. pretrain the tiny toy CLIP on synthetic image-caption pairs (about two
#      minutes, once; reused while data/toy_clip/tiny_rn.pth exists),
#   2. make the synthetic SYSU-layout data (with one description per image),
#   3. train: prompt learning on cached features (its loss falls as the ID
#      prompts align with the pretrained image features), then fine-tuning
#      with the explicit-semantics losses, and the 10-trial SYSU-MM01
#      evaluation (Rank-1/5/10/20, mAP, mINP per trial, mean ± std).
#   bash demo/toy_demo.sh [CONFIG] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/eees_toy.py}
WORK_DIR=${2:-work_dirs/toy_demo}
PYTHON=${PYTHON:-python}
# The toy CLIP weights the config loads (data/toy_clip/tiny_rn.pth, or
# tiny_vit.pth for the ViT toy configs; $MMVIREID_TOY_CLIP_DIR moves them).
# (the last line: mmengine logs the env-variable substitution on stdout)
WEIGHTS=$("$PYTHON" -c "import sys; from mmengine.config import Config; \
print(Config.fromfile(sys.argv[1]).model.image_encoder.pretrained or '')" \
    "$CONFIG" | tail -n 1)
case "$WEIGHTS" in
    */tiny_rn.pth | */tiny_vit.pth)
        if [ ! -f "$WEIGHTS" ]; then
            "$PYTHON" tools/pretrain_toy_clip.py \
                --arch "$(basename "$WEIGHTS" .pth)" --out "$WEIGHTS"
        fi ;;
esac
if [ ! -f data/toy_sysu/exp/test_id.txt ]; then
    "$PYTHON" tools/dataset_converters/make_toy_vireid.py --layout sysu \
        --out data/toy_sysu --num-ids 64
fi
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
