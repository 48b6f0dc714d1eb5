# CLIP-VIReID baseline on SYSU-MM01 (all-search, single-shot, 10 trials):
# OpenAI CLIP RN50, 288x144; prompt learning (60 epochs) then fine-tuning
# (120 epochs), as CLIP-ReID's CNN recipe on the VI-ReID data pipeline.
_base_ = [
    '_base_/models/clip_vireid_rn50.py',
    '_base_/datasets/sysu_mm01.py',
    '_base_/schedules/clip_vireid_2stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=395)
