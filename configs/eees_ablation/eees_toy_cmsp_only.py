# Ablation "+CMSP": the baseline losses plus CMSP only.
_base_ = ['../eees_toy.py']
model = dict(ese_loss=None, cvsc_loss=None)
