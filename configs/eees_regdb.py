# EEES on RegDB (split 1 of 10, visible->thermal and thermal->visible): the
# SYSU-MM01 recipe with the RegDB base and its 206 training identities. Each
# split is its own training (tools/analysis_tools/regdb_trials.py runs all
# ten and collects the table). Needs data/regdb/ and its descriptions:
#   python tools/generate_descriptions.py configs/eees_regdb.py \
#       --backend vlm --model llava-hf/llava-1.5-7b-hf
# Describe the train images of every split into one descriptions.json
# (--cfg-options train_dataloader.dataset.trial=N, N = 1..10; the tool skips
# the images already described), so one file serves all ten trainings.
_base_ = [
    '_base_/models/eees_rn50.py',
    '_base_/datasets/regdb.py',
    '_base_/schedules/eees_2stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=206)
train_dataloader = dict(dataset=dict(descriptions='descriptions.json'))
