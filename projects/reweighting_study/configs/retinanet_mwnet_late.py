# Study variant 'mwnet_late': Meta-Weight-Net without weight decay on the VNet
# (projects/reweighting_study/configs/retinanet_mwnet_no_decay.py), whose weights and meta steps begin
# half-way (begin=750 of the base schedule's 1500 iterations; the study rescales it with the
# schedule). Before `begin` every anchor has weight 1 (RetinaHead's loss, as focal).
# Hypothesis (from docs/study/note.md, item 11): while the detector is under-fit the meta-gradient
# says "up-weight the high losses", and the noisy annotations have them; on the default run's
# checkpoints it ranks noisy anchors' coefficients above clean ones' only from ~40% of the run on
# (the paper's decreasing weight function). The default MW-Net learns the early, increasing shape
# and its weight decay then flattens it; without the decay the increasing shape stays and costs
# mAP. Here the VNet would see only the late signal, with nothing to erase what it learns.
# Outcome: docs/study/note.md, item 12 (it does not hold). Not a recommended config.
_base_ = ['./retinanet_mwnet_no_decay.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MetaWeightNetWeighter', theta='cls_out', hidden=100,
                       normalise='foreground',
                       optim_wrapper=dict(type='OptimWrapper',
                                          optimizer=dict(type='Adam', lr=1e-3, weight_decay=0.0))),
         clean_dataloader={{_base_.clean_dataloader}}, interval=1, begin=750),
]
