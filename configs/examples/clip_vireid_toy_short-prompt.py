# Config tutorial: change the stage plan only (no model change). A shorter
# prompt stage whose feature cache holds visible images only; the finetune
# stage and its schedule are inherited unchanged (schedulers count epochs
# from the start of their own stage).
#
#   python tools/train.py configs/examples/clip_vireid_toy_short-prompt.py
_base_ = ['../clip_vireid_toy.py']

train_cfg = dict(stages=[
    dict(
        name='prompt',
        epochs=3,
        validate=False,
        feature_cache=dict(
            pipeline={{_base_.test_pipeline}},
            batch_size=64,
            extract_batch_size=64,
            num_workers=0,
            modalities=['vis'])),
    dict(name='finetune', epochs=35),
])
param_scheduler = dict(prompt=[
    dict(
        type='TimmCosineLR',
        t_initial=3,
        lr_min=1e-5,
        warmup_t=1,
        warmup_lr_init=3e-4,
        t_offset=1)
])
