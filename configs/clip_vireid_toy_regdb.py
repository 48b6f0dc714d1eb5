# The CLIP-VIReID toy recipe on the synthetic RegDB layout: same model,
# pipelines and schedule as clip_vireid_toy.py; RegDB's dataset class (split
# 1) and protocol (both directions, full test sets). Make the data first:
#   python tools/dataset_converters/make_toy_vireid.py --layout regdb \
#       --out data/toy_regdb
_base_ = ['./clip_vireid_toy.py']

data_root = 'data/toy_regdb/'
model = dict(num_classes=12)
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
