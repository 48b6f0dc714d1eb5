# CLIP4VI-ReID on RegDB (one train/test split per run, the trial set in the
# dataset base; both directions reported): OpenAI CLIP RN50, 288x144, one
# image encoder shared by both modalities; the same three-stage plan as
# clip4vireid_sysu.py.
# Our design from the abstract: docs/en/methods/clip4vireid.md.
_base_ = [
    '_base_/models/clip4vireid_rn50.py',
    '_base_/datasets/regdb.py',
    '_base_/schedules/clip4vireid_3stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=206)
train_cfg = dict(stages=[
    # TSG sees visible images only: the cache keeps modalities=['vis']
    dict(name='tsg', epochs=60, validate=False,
         feature_cache=dict(pipeline={{_base_.test_pipeline}}, batch_size=64,
                            extract_batch_size=128, num_workers=4,
                            modalities=['vis'])),
    dict(name='ife', epochs=80),
    dict(name='hsa', epochs=40),
])
