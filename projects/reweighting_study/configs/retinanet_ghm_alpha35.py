# Study variant 'ghm_alpha35': 'ghm_box4' with GHM-C's balance at alpha=0.35
# (positives' harmonizing weights x0.35, negatives' x0.65, rescaled to the same sum).
# Why: with 'ghm_alpha10', 'ghm_alpha15' and 'ghm_joint' (alpha=None, i.e. 0.5) it brackets the
# product config's alpha=0.25 from both sides.
# Outcome: docs/study/note.md, item 21.
_base_ = ['./retinanet_ghm_box4.py']

model = dict(bbox_head=dict(loss_cls=dict(alpha=0.35)))
