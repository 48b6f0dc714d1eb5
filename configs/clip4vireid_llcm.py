# CLIP4VI-ReID on LLCM (IR->VIS and VIS->IR, 10 gallery draws): the
# SYSU-MM01 recipe with the LLCM base and its 713 training identities.
_base_ = [
    '_base_/models/clip4vireid_rn50.py',
    '_base_/datasets/llcm.py',
    '_base_/schedules/clip4vireid_3stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=713)
