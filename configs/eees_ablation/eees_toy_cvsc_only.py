# Ablation "+CVSC": the baseline losses plus CVSC only.
_base_ = ['../eees_toy.py']
model = dict(ese_loss=None, cmsp_loss=None)
