# RetinaNet with per-anchor Meta-Weight-Net (Shu et al. NeurIPS'19) on the embedded benchmark.
# w_a = VNet(l_a) (MLP 1-100-1, sigmoid) for the valid foreground anchors, mean one over them;
# background anchors keep weight 1 (normalise='foreground', as configs/retinanet_l2rw.py). Every
# iteration the VNet takes one step on the clean loss of a batch of the held-out 'meta' split after
# a one-step SGD look-ahead of theta = the classification output conv (lr = the model's current lr).
# Foreground only: weights normalised over every anchor (the paper's mean one over all examples)
# follow the loss, and in a dense detector the high losses are the foreground, so the VNet's weights
# would mostly re-balance foreground against background instead of clean against noisy annotations.
# VNet optimiser Adam 1e-3 (the authors' "stable" script) rather than SGD: the hypergradient carries
# the detector's learning rate as a factor, so its norm is tiny and SGD would barely move the VNet;
# Adam's step does not scale with the gradient's magnitude. Weight decay 1e-4 as in that script.
_base_ = ['./retinanet_l2rw.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MetaWeightNetWeighter', theta='cls_out', hidden=100,
                       normalise='foreground',
                       optim_wrapper=dict(type='OptimWrapper',
                                          optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4))),
         clean_dataloader={{_base_.clean_dataloader}}, interval=1),
]
