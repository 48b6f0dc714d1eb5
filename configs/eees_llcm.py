# EEES on LLCM (IR->VIS and VIS->IR, 10 gallery draws): the SYSU-MM01 recipe
# with the LLCM base and its 713 training identities. Needs data/llcm/ and
# its descriptions:
#   python tools/generate_descriptions.py configs/eees_llcm.py \
#       --backend vlm --model llava-hf/llava-1.5-7b-hf
_base_ = [
    '_base_/models/eees_rn50.py',
    '_base_/datasets/llcm.py',
    '_base_/schedules/eees_2stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=713)
train_dataloader = dict(dataset=dict(descriptions='descriptions.json'))
