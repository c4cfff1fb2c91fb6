# Study variant 'ghm_l1': 'ghm_box4' with GHM-R replaced by focal's box loss (L1);
# GHM-C as configured there (one density over all levels, alpha=0.25, the warm-up).
# Why: on clean Fashion-MNIST the configured GHM matches focal loss at AP50 and AP75 but trails it
# in mAP (AP over IoU 0.5-0.95), i.e. at the highest IoUs. GHM-R gives the dense, nearly right
# coordinates little weight; this run tells whether the box loss is what costs those IoUs.
# Outcome: docs/study/note.md, item 23.
_base_ = ['./retinanet_ghm_box4.py']

model = dict(bbox_head=dict(loss_bbox=dict(_delete_=True, type='L1Loss', loss_weight=1.0)))
