# Study control 'random_drop_annotation': the random_drop control
# (projects/reweighting_study/configs/retinanet_random_drop.py) dropping whole annotations instead
# of anchors: each batch, every annotation is dropped with probability 0.2, with all the anchors
# assigned to it; the other positive anchors are scaled to mean one, background anchors keep 1.
# 0.2 is the share of annotations whose every anchor L2RW zeroes at the last checkpoint on digits
# with 40% uniform noise at 12,000 iterations (annotations_all_zeroed_* of its diagnostics dumps:
# 15-22% of the clean ones, 24-30% of the noisy ones, 3 seeds). Why: dropping anchors at random
# does not keep val mAP from falling as L2RW does; if dropping whole annotations at random does,
# that is the part of L2RW's weights that matters. Outcome: docs/study/converged/note.md.
_base_ = ['./retinanet_random_drop.py']

custom_hooks = [dict(type='mmreweight.MetaReweightHook',
                     weighter=dict(type='mmreweight.RandomPositiveDropWeighter', drop_rate=0.2,
                                   per='annotation'))]
