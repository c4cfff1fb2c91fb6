# Study variant 'ghm_c': GHM-C alone. The focal config (configs/retinanet_focal.py) with its
# classification loss replaced by the paper's GHM-C (bins=30, momentum=0.75, no warm-up); boxes
# keep the focal config's L1 loss.
# Why: to tell which half of GHM (C or R) costs accuracy on the embedded benchmark, and whether GHM-C
# down-weights mislabelled positives as outliers under label noise. Outcome: docs/study/note.md,
# items 6 and 13.
_base_ = ['../../../configs/retinanet_focal.py']

model = dict(
    bbox_head=dict(
        type='LevelAwareRetinaHead',
        loss_cls=dict(_delete_=True, type='GHMC', bins=30, momentum=0.75, use_sigmoid=True,
                      loss_weight=1.0, paper_exact=True)))
