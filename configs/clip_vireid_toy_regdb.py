# The CLIP-VIReID toy recipe on the synthetic RegDB layout: same model,
# pipelines and schedule as clip_vireid_toy.py; RegDB's dataset class (split
# 1) and protocol (both directions, full test sets). Make the data first
# (128 people, 6 visible and 6 thermal images each; every split trains on
# 64 of them and tests on the other 64, so chance Rank-1 is 1/64 = 1.6 %):
#   python tools/dataset_converters/make_toy_vireid.py --layout regdb \
#       --out data/toy_regdb --num-ids 128 --imgs-per-cam 6
# All 10 splits, then their mean (docs/en/user_guides/datasets.md):
#   python tools/analysis_tools/regdb_trials.py run \
#       configs/clip_vireid_toy_regdb.py --work-dir work_dirs/toy_regdb
#   python tools/analysis_tools/regdb_trials.py collect work_dirs/toy_regdb
_base_ = ['./clip_vireid_toy.py']

data_root = 'data/toy_regdb/'
model = dict(num_classes=64)
train_dataloader = dict(
    dataset=dict(
        _delete_=True, type='RegDBDataset', data_root=data_root,
        split='train', trial=1, pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        _delete_=True, type='RegDBDataset', data_root=data_root,
        split='test', trial=1, pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='VIReIDMetric', protocol='regdb')
test_evaluator = val_evaluator
# fine-tuning at 1e-3 rather than the SYSU toy's 3e-4 (chosen on split 1:
# configs/clip_vireid/README.md)
optim_wrapper = dict(finetune=dict(optimizer=dict(lr=1e-3)))
