# Ablation "baseline": EEES with ESE, CVSC and CMSP all off, i.e. the
# CLIP-VIReID losses (ID + triplet + i2t) on the EEES backbone and head.
_base_ = ['../eees_toy.py']
model = dict(ese_loss=None, cvsc_loss=None, cmsp_loss=None)
