# CLIP4VI-ReID on SYSU-MM01 (all-search, single-shot, 10 trials): OpenAI CLIP
# RN50, 288x144, one image encoder shared by both modalities.
#   tsg (60 ep): ID prompts on cached VISIBLE features only
#   ife (80 ep): shared encoder, frozen text, IR i2t through the IFE neck
#   hsa (40 ep): prompts (small lr) + encoder, t2i SupCon + V/IR alignment
# Recipe table: configs/clip4vireid/README.md.
_base_ = [
    '_base_/models/clip4vireid_rn50.py',
    '_base_/datasets/sysu_mm01.py',
    '_base_/schedules/clip4vireid_3stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=395)
