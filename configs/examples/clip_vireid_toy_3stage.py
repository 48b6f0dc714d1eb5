# Config tutorial, example 3: add a stage by inheritance.
# The toy recipe plus a third stage, 'align', that fine-tunes only the BNNeck
# head with an identity loss and MSEL (the cross-modality distance loss of
# CSDN) while the encoders stay frozen. A stage is two things:
#
# * model side: a model class that lists the stage in STAGES and implements
#   loss_align(); here CLIPVIReIDAlign in
#   projects/example_project/models/clip_vireid_align.py, a subclass of
#   CLIPVIReID (see docs/en/user_guides/new_method.md);
# * config side: the stage in train_cfg.stages, its optimiser (which modules
#   train) and its schedulers, keyed by the stage name. Lists are replaced,
#   not merged, so the stage list is written out in full.
#
# The project module is imported by name: run from the repository root with
# it on the Python path,
#   PYTHONPATH=. python tools/train.py \
#       configs/examples/clip_vireid_toy_3stage.py
_base_ = ['../clip_vireid_toy.py']

custom_imports = dict(
    imports=['projects.example_project.models'], allow_failed_imports=False)

model = dict(
    type='CLIPVIReIDAlign',
    # K = the sampler's num_instances (images per identity and modality)
    msel_loss=dict(type='MSELLoss', num_pos=4, loss_weight=0.5))
train_cfg = dict(stages=[
    dict(
        name='prompt',
        epochs=5,
        validate=False,
        feature_cache={{_base_.feature_cache}}),
    dict(name='finetune', epochs=35),
    dict(name='align', epochs=5),
])
optim_wrapper = dict(
    align=dict(
        modules=['head'],
        optimizer=dict(type='Adam', lr=1e-4, weight_decay=5e-4)))
param_scheduler = dict(align=[
    dict(
        type='CosineAnnealingLR',
        T_max=5,
        eta_min=1e-6,
        by_epoch=True,
        begin=0,
        end=5)
])
