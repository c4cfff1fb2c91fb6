# Study variant 'mwnet_all': Meta-Weight-Net (configs/retinanet_mwnet.py) with a weight for every
# valid anchor, mean one over all of them: the paper's normalisation over every example
# (MetaWeightNetWeighter(normalise='mean_one'), the class's default). configs/retinanet_mwnet.py
# says why the shipped config weights the foreground only. The study's records hold no run of it.
_base_ = ['../../../configs/retinanet_mwnet.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MetaWeightNetWeighter', theta='cls_out', hidden=100,
                       normalise='mean_one',
                       optim_wrapper=dict(type='OptimWrapper',
                                          optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4))),
         clean_dataloader={{_base_.clean_dataloader}}, interval=1),
]
