# EEES on LLCM (713 training identities; IR->VIS and VIS->IR, 10 gallery
# draws): the SYSU-MM01 recipe with LLCM's data. Needs the dataset in
# data/llcm/ and its descriptions:
#   python tools/generate_descriptions.py configs/eees_llcm.py \
#       --backend llava
_base_ = ['./eees_sysu.py']

dataset_type = 'LLCMDataset'
data_root = 'data/llcm/'
model = dict(num_classes=713)
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(type='VIReIDMetric', protocol='llcm', num_trials=10)
test_evaluator = val_evaluator
