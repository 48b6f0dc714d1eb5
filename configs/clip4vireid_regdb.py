# CLIP4VI-ReID on RegDB (split 1 of 10, both directions): the SYSU-MM01
# recipe with the RegDB base and its 206 training identities.
_base_ = [
    '_base_/models/clip4vireid_rn50.py',
    '_base_/datasets/regdb.py',
    '_base_/schedules/clip4vireid_3stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=206)
