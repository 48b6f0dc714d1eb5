# RegDB, one of the 10 official splits (trial=1..10; each split is its own
# training, see tools/analysis_tools/regdb_trials.py). Evaluated in both
# directions (visible->thermal and thermal->visible) on the full test sets.
_base_ = ['./vireid_pipelines_288x144.py']
dataset_type = 'RegDBDataset'
data_root = 'data/regdb/'
trial = 1

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='CrossModalIdentitySampler', num_ids=8,
                 num_instances=4),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 trial=trial, pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 trial=trial, pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(type='VIReIDMetric', protocol='regdb')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
