# EEES on RegDB (split ``trial`` 1..10, visible->thermal and
# thermal->visible): the SYSU-MM01 recipe with RegDB's data and 206 training
# identities. Train and test every trial and average, as the protocol does:
#   --cfg-options train_dataloader.dataset.trial=N \
#       val_dataloader.dataset.trial=N test_dataloader.dataset.trial=N
# Needs the dataset in data/regdb/ and its descriptions:
#   python tools/generate_descriptions.py configs/eees_regdb.py \
#       --backend llava
# (descriptions.json covers the train images of the trial's split; a file
# generated for all ten splits serves every trial.)
_base_ = ['./eees_sysu.py']

trial = 1
dataset_type = 'RegDBDataset'
data_root = 'data/regdb/'
model = dict(num_classes=206)
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, trial=trial))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        split='test',
        trial=trial,
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(type='VIReIDMetric', protocol='regdb', num_trials=1)
test_evaluator = val_evaluator
