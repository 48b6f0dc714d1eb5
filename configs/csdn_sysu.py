# CSDN on SYSU-MM01 (all-search, single-shot, 10 trials), as the public code
# trains it: OpenAI CLIP RN50 at 288x144, modality-specific prompts (60
# epochs), SII fusion (60 epochs), HSE fine-tuning (120 epochs).
_base_ = [
    '_base_/models/csdn_rn50.py',
    '_base_/datasets/sysu_mm01.py',
    '_base_/schedules/csdn_3stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=395)
train_dataloader = dict(dataset=dict(pipeline={{_base_.csdn_train_pipeline}}))
