# Logging tutorial: the toy recipe with TensorBoard logging, a one-line
# switch in a leaf config (see configs/_base_/tensorboard_runtime.py for the
# base-list variant). Needs `pip install tensorboard`; then
#
#   python tools/train.py configs/examples/clip_vireid_toy_tensorboard.py
#   tensorboard --logdir work_dirs/clip_vireid_toy_tensorboard
_base_ = ['../clip_vireid_toy.py']

visualizer = dict(vis_backends=[
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend'),
])
