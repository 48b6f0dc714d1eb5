# Ablation "all but CVSC": EEES with CVSC switched off.
_base_ = ['../eees_toy.py']
model = dict(cvsc_loss=None)
