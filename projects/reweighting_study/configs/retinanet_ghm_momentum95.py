# Study variant 'ghm_momentum95': 'ghm_box4' with the moving average of both losses'
# bin counts at momentum 0.95 instead of the paper's 0.75 (GHM-C) and 0.7 (GHM-R).
# Why: a batch of 8 images holds about 250 positive anchors, so the bins above the first few hold
# a handful of elements and their harmonizing weights (N / count) jump from batch to batch; the
# paper's momenta were chosen for COCO batches of 16 large images. A slower average counts the
# density over about 20 batches instead of 4.
# Outcome: docs/study/note.md, item 23.
_base_ = ['./retinanet_ghm_box4.py']

model = dict(bbox_head=dict(loss_cls=dict(momentum=0.95), loss_bbox=dict(momentum=0.95)))
