# default_runtime.py with TensorBoard logging switched on.
#
# Switch a config that lists the runtime itself by replacing
# '_base_/default_runtime.py' with '_base_/tensorboard_runtime.py' in its
# _base_ list. A leaf that inherits a complete config (e.g. clip_vireid_toy.py)
# switches with one line instead (mmengine refuses two bases that both define
# the visualizer), as configs/examples/clip_vireid_toy_tensorboard.py does:
#
#   visualizer = dict(vis_backends=[dict(type='LocalVisBackend'),
#                                   dict(type='TensorboardVisBackend')])
#
# Scalars (losses, per-stage learning rates, Rank-k / mAP / mINP) and the
# ranking images of tools/test.py --show-dir then also go to TensorBoard event
# files in <work_dir>/<timestamp>/vis_data/:  tensorboard --logdir work_dirs
# The local backend stays: tools/analysis_tools/analyze_logs.py reads its
# scalars.json. Needs `pip install tensorboard` (requirements/optional.txt).
_base_ = ['./default_runtime.py']

vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend'),
]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
