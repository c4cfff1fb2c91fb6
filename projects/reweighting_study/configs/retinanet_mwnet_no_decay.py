# Study variant 'mwnet_no_decay': Meta-Weight-Net as configs/retinanet_mwnet.py, with no weight decay
# on the VNet (Adam lr 1e-3, weight_decay 0 instead of 1e-4).
# Why: Adam's weight decay is coupled (wd * phi is added to the gradient, then normalised). The
# hypergradient here carries the inner step size and 1 / avg_factor, so after ~300 iterations its
# norm (1e-4 .. 1e-7) is below wd * |phi| (1e-4 * |phi|); Adam's first moment then equals the decay
# term, every step shrinks phi by ~lr in the sign of phi, and |phi| falls ~900x over 3000
# iterations: the VNet ends flat, near sigmoid(0) = 0.5, weights all 1. Without the decay, the
# shape the VNet learns stays. Outcome: docs/study/note.md, item 11.
_base_ = ['../../../configs/retinanet_mwnet.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MetaWeightNetWeighter', theta='cls_out', hidden=100,
                       normalise='foreground',
                       optim_wrapper=dict(type='OptimWrapper',
                                          optimizer=dict(type='Adam', lr=1e-3, weight_decay=0.0))),
         clean_dataloader={{_base_.clean_dataloader}}, interval=1),
]
