# Study variant 'ghm_alpha15': 'ghm_box4' with GHM-C's balance at alpha=0.15
# (positives' harmonizing weights x0.15, negatives' x0.85, rescaled to the same sum).
# Why: at alpha=0.25 the positives still take more of the classification gradient than focal
# loss gives them (diagnose --gradient-share); this run measures a balance nearer focal's share.
# Outcome: docs/study/note.md, item 21.
_base_ = ['./retinanet_ghm_box4.py']

model = dict(bbox_head=dict(loss_cls=dict(alpha=0.15)))
