# RetinaNet with per-anchor Meta-Weight-Net (Shu et al. NeurIPS'19) on the embedded benchmark.
# w_a = VNet(l_a) (MLP 1-100-1, sigmoid), mean one over valid anchors; every iteration the VNet
# takes one step on the clean loss of a 'meta' batch after a one-step SGD look-ahead of
# theta = the classification output conv (lr = the model's current lr)
# (mmreweight/weighting/mwnet.py).
# VNet optimizer: Adam 1e-3 (as the authors' "stable" script) rather than the WRN script's SGD 1e-3:
# the hypergradient carries the inner step size alpha (the detector's lr, 2e-4..2e-2 here), so its
# norm is ~1e-6 on this benchmark and SGD would leave the VNet where it was initialised; Adam's
# update does not scale with the gradient's magnitude.
_base_ = ['./retinanet_l2rw.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MetaWeightNetWeighter', theta='cls_out', hidden=100,
                       normalise='mean_one',
                       optim_wrapper=dict(type='OptimWrapper',
                                          optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4))),
         clean_dataloader={{_base_.clean_dataloader}}, interval=1),
]
