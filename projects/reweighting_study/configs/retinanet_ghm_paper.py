# Study variant 'ghm_paper': GHM-C + GHM-R exactly as the paper and mmdet's configs/ghm set them,
# from the first iteration: GHM-C bins=30 momentum=0.75, GHM-R mu=0.02 bins=10 momentum=0.7
# loss_weight=10, no warm-up (paper_exact=True), the loss called level by level as mmdet's head
# calls it, with one moving average per FPN level.
# Why: the reference that configs/retinanet_ghm.py's warm-up, data-derived mu and one call over all
# levels are measured against. Outcome: docs/study/note.md, items 6, 13, 17 and 21.
_base_ = ['./retinanet_ghm_per_level.py']

model = dict(
    bbox_head=dict(
        loss_cls=dict(paper_exact=True),
        loss_bbox=dict(_delete_=True, type='GHMR', mu=0.02, bins=10, momentum=0.7,
                       loss_weight=10.0, paper_exact=True)))
