# Study control 'random_drop_cell': the random_drop control
# (projects/reweighting_study/configs/retinanet_random_drop.py) dropping whole (class, anchor
# shape) cells of a batch instead of single anchors: each batch, every (class, anchor shape) pair
# is dropped with probability 0.52, with all the foreground anchors of that class and shape; the
# other positive anchors are scaled to mean one, background anchors keep 1. 0.52 is the share of
# positive anchors L2RW zeroes over training on digits with 40% uniform noise at 12,000
# iterations, and L2RW's zeros cluster so: an anchor's alignment with the clean gradient uses only
# its class and shape's output channels, and in its diagnostics dumps two positives of different
# annotations in one batch, class and shape agree on being zeroed 71-83% of the time (random
# drops: 49%). Why: neither random anchors nor random annotations keep val mAP from falling as
# L2RW does; if random cells do, L2RW's stability comes from how its zeros are grouped, not from
# which labels it trusts.
# Outcome: docs/study/converged/note.md.
_base_ = ['./retinanet_random_drop.py']

custom_hooks = [dict(type='mmreweight.MetaReweightHook',
                     weighter=dict(type='mmreweight.RandomPositiveDropWeighter', drop_rate=0.52,
                                   per='cell'))]
