# Ablation "all but CMSP": EEES with CMSP switched off.
_base_ = ['../eees_toy.py']
model = dict(cmsp_loss=None)
