# The CLIP-VIReID toy recipe on the synthetic LLCM layout: same model,
# pipelines and schedule as clip_vireid_toy.py; LLCM's dataset class and
# protocol (IR->VIS and VIS->IR, 10 gallery draws). Make the data first:
#   python tools/dataset_converters/make_toy_vireid.py --layout llcm \
#       --out data/toy_llcm --num-ids 64
_base_ = ['./clip_vireid_toy.py']

data_root = 'data/toy_llcm/'
model = dict(num_classes=43)
train_dataloader = dict(
    dataset=dict(
        _delete_=True, type='LLCMDataset', data_root=data_root,
        split='train', pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        _delete_=True, type='LLCMDataset', data_root=data_root,
        split='test', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True, type='VIReIDMetric', protocol='llcm', num_trials=10)
test_evaluator = val_evaluator
