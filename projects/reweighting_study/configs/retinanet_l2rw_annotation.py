# L2RW with one weight per annotation instead of per anchor (L2RWWeighter(per='annotation')).
# An annotation is the unit that carries a (possibly wrong) label, and what the paper's one
# epsilon per example weights; RetinaNet splits it over several positive anchors whose per-anchor
# alignments with the clean gradient are noisy one by one. Here all anchors of an annotation share
# max(0, sum of their alignments), normalised to mean one over the foreground anchors; background
# anchors keep weight 1 as in configs/retinanet_l2rw.py.
_base_ = ['../../../configs/retinanet_l2rw.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.L2RWWeighter', theta='cls_out', normalise='foreground',
                       per='annotation'),
         clean_dataloader={{_base_.clean_dataloader}}, interval=1),
]
