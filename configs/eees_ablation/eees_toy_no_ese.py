# Ablation "all but ESE": EEES with ESE switched off.
_base_ = ['../eees_toy.py']
model = dict(ese_loss=None)
