# CSDN on LLCM. The public CSDN code has no LLCM loader: this applies its
# SYSU-MM01 recipe unchanged to LLCM's 713 training identities and protocol.
_base_ = [
    '_base_/models/csdn_rn50.py',
    '_base_/datasets/llcm.py',
    '_base_/schedules/csdn_3stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=713)
train_dataloader = dict(dataset=dict(pipeline={{_base_.csdn_train_pipeline}}))
