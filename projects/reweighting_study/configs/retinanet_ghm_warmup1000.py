# Study variant 'ghm_warmup1000': 'ghm_box4' with both losses' warm-up from focal
# loss and smooth L1 to the harmonized losses over 1,000 iterations instead of 500 (mu is still
# calibrated over the first 500).
# Why: 'ghm_box4' leads focal loss at 750 iterations and trails it from 1,500 on; this
# run measures whether a later hand-over to the harmonized losses keeps the lead.
# Outcome: docs/study/note.md, item 21.
_base_ = ['./retinanet_ghm_box4.py']

model = dict(bbox_head=dict(loss_cls=dict(warmup_iters=1000), loss_bbox=dict(warmup_iters=1000)))
