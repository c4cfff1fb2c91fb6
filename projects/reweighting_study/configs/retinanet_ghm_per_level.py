# Study variant 'ghm_per_level': GHM with the warm-up and mu from the data ('ghm_joint'), the loss
# called level by level, as mmdet's RetinaHead calls it, with one moving average per FPN level.
# Why: the product config's GHM before the one call over all levels and GHM-C's balance; the
# reference for both. Outcome: docs/study/note.md, items 17 and 21.
_base_ = ['./retinanet_ghm_joint.py']

model = dict(
    bbox_head=dict(
        type='LevelAwareRetinaHead',
        loss_cls=dict(num_levels=5),
        loss_bbox=dict(num_levels=5)))
