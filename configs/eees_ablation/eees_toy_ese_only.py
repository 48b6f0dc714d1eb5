# Ablation "+ESE": the baseline losses plus ESE only.
_base_ = ['../eees_toy.py']
model = dict(cvsc_loss=None, cmsp_loss=None)
