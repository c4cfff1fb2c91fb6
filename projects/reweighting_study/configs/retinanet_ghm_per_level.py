# Study variant 'ghm_per_level': configs/retinanet_ghm.py (warm-up, mu from the data) with the loss
# called level by level, as mmdet's RetinaHead calls it, and one moving average per FPN level.
# Why: the product config's GHM before its losses were called once over all levels; the runs that
# measured what the joint call gains. Outcome: docs/study/note.md, items 17 and 21.
_base_ = ['../../../configs/retinanet_ghm.py']

model = dict(
    bbox_head=dict(
        type='LevelAwareRetinaHead',
        loss_cls=dict(num_levels=5),
        loss_bbox=dict(num_levels=5)))
