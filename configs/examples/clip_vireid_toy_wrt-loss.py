# Config tutorial, example 2: change the losses.
# The toy recipe with CSDN's loss choices in the finetune stage: the
# weighted-regularisation triplet (WRT, no margin) instead of the batch-hard
# triplet, plain cross-entropy (label smoothing off) for the identity loss,
# and another weighting of the terms. Any registered loss can be used; its
# call signature must match the one the model uses for that term.
#
#   python tools/train.py configs/examples/clip_vireid_toy_wrt-loss.py
_base_ = ['../clip_vireid_toy.py']

model = dict(
    id_loss=dict(type='LabelSmoothCELoss', epsilon=0.0),
    # _delete_: HardTripletLoss's margin is not a WRTTripletLoss argument;
    # loss_weight: each loss carries its own weight
    triplet_loss=dict(_delete_=True, type='WRTTripletLoss', loss_weight=0.15))
