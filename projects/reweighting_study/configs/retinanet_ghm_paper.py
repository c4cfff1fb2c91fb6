# Study variant 'ghm_paper': GHM-C + GHM-R exactly as the paper and mmdet's configs/ghm set them,
# from the first iteration: GHM-C bins=30 momentum=0.75, GHM-R mu=0.02 bins=10 momentum=0.7
# loss_weight=10, no warm-up (paper_exact=True), one moving average per FPN level.
# Why: the reference that configs/retinanet_ghm.py's warm-up and data-derived mu are measured
# against. Outcome: docs/study/note.md, items 6, 13 and 17.
_base_ = ['../../../configs/retinanet_ghm.py']

model = dict(
    bbox_head=dict(
        loss_cls=dict(paper_exact=True),
        loss_bbox=dict(_delete_=True, type='GHMR', mu=0.02, bins=10, momentum=0.7,
                       loss_weight=10.0, paper_exact=True)))
