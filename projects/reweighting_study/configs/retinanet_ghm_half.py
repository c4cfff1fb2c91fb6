# Study variant 'ghm_half': 'ghm_joint' with both loss weights halved.
# Why: one loss call over all levels also scales GHM's loss down (one mean over bins instead of
# one per level); this run tells the density's effect from the scale's.
_base_ = ['./retinanet_ghm_joint.py']

model = dict(bbox_head=dict(loss_cls=dict(loss_weight=0.5), loss_bbox=dict(loss_weight=2.0)))
