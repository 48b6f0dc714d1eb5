# EEES on SYSU-MM01 (all-search, single-shot, 10 trials): OpenAI CLIP RN50,
# 288x144, modality-specific stems; prompt learning (60 epochs), then
# fine-tuning with ID + triplet + i2t + ESE + CVSC + CMSP (120 epochs).
# Needs data/sysu_mm01/ and its descriptions:
#   python tools/generate_descriptions.py configs/eees_sysu.py \
#       --backend vlm --model llava-hf/llava-1.5-7b-hf
# Recipe table: configs/eees/README.md.
_base_ = [
    '_base_/models/eees_rn50.py',
    '_base_/datasets/sysu_mm01.py',
    '_base_/schedules/eees_2stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=395)
# {relative image path: text} for every train image, relative to data_root
train_dataloader = dict(dataset=dict(descriptions='descriptions.json'))
