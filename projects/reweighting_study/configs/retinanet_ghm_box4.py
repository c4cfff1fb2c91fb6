# Study variant 'ghm_box4': configs/retinanet_ghm.py with GHM-R's loss_weight 4 instead of 10,
# which puts the start of the warm-up exactly on the scale of focal's L1 box loss (4 coordinates
# per positive, divided by the positives): the GHM of items 21 and 23, and the base of the GHM
# variants measured there.
# Why: paired with 'ghm' by seed, it measures what GHM-R's loss weight does.
# Outcome: docs/study/note.md, items 21, 23 and 24.
_base_ = ['../../../configs/retinanet_ghm.py']

model = dict(bbox_head=dict(loss_bbox=dict(loss_weight=4.0)))
