# LLCM: IR->VIS (DEEN's default: all NIR queries vs a sampled VIS gallery)
# and VIS->IR (all VIS queries vs a sampled NIR gallery; DEEN's literal [2,1]
# via llcm_vis2ir_mode='deen'), 10 gallery draws each. 288x144 like the AGW
# copy in the LLCM repository (DEEN itself tests at 384x144).
_base_ = ['./vireid_pipelines_288x144.py']
dataset_type = 'LLCMDataset'
data_root = 'data/llcm/'

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='CrossModalIdentitySampler', num_ids=8,
                 num_instances=4),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(type='VIReIDMetric', protocol='llcm', num_trials=10)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
