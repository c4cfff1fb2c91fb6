# Study variant 'ghm_joint': 'ghm_box4' without GHM-C's positive/negative balance
# (alpha=None): one loss call over all FPN levels, the warm-up and mu from the data.
# Why: the step between 'ghm_per_level' and the product config, measuring what the one call over
# all levels and the balance each add. Outcome: docs/study/note.md, item 21.
_base_ = ['./retinanet_ghm_box4.py']

model = dict(bbox_head=dict(loss_cls=dict(alpha=None)))
