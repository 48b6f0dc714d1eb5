# CSDN on RegDB (one trial of the 10; visible-to-thermal test), with the
# SYSU-MM01 recipe of the public code (it trains both datasets with the same
# arguments apart from --pid_num 206 and --trial).
_base_ = [
    '_base_/models/csdn_rn50.py',
    '_base_/datasets/regdb.py',
    '_base_/schedules/csdn_3stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=206)
train_dataloader = dict(dataset=dict(pipeline={{_base_.csdn_train_pipeline}}))
