# Meta-Weight-Net on the foreground only (MetaWeightNetWeighter(normalise='foreground')): the VNet
# weights the valid foreground anchors, mean one over them; background anchors keep weight 1.
# With a weight for every anchor (configs/retinanet_mwnet.py) the VNet learns an increasing
# function of the loss on this benchmark: high losses are the foreground, so at 40% uniform noise
# positives ended at ~30x the background's weight and anchors of noisy annotations at ~2x those of
# clean ones (study run mnist-uniform40-mwnet-s1). Among foreground anchors a high loss is what a
# wrong label looks like, the setting of the paper's classification experiments.
_base_ = ['./retinanet_mwnet.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MetaWeightNetWeighter', theta='cls_out', hidden=100,
                       normalise='foreground',
                       optim_wrapper=dict(type='OptimWrapper',
                                          optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4))),
         clean_dataloader={{_base_.clean_dataloader}}, interval=1),
]
