# Study variant 'l2rw_ann': L2RW (configs/retinanet_l2rw.py) with one weight per annotation instead
# of per anchor (L2RWWeighter(per='annotation')): all positive anchors of an annotation share
# max(0, sum of their alignments with the clean gradient), normalised to mean one over the
# foreground anchors; background anchors keep weight 1.
# Why: an annotation is the unit that carries a (possibly wrong) label, and what the paper's one
# epsilon per example weights; RetinaNet splits it over several positive anchors whose alignments
# are noisy one by one. The study's records hold no run of it.
_base_ = ['../../../configs/retinanet_l2rw.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.L2RWWeighter', theta='cls_out', normalise='foreground',
                       per='annotation'),
         clean_dataloader={{_base_.clean_dataloader}}, interval=1),
]
