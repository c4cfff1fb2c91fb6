# Study variant 'ghm_double': 'ghm_joint' with both loss weights doubled.
# Why: with 'ghm_half', the other side of the loss scale that the one call over all levels set.
_base_ = ['./retinanet_ghm_joint.py']

model = dict(bbox_head=dict(loss_cls=dict(loss_weight=2.0), loss_bbox=dict(loss_weight=8.0)))
