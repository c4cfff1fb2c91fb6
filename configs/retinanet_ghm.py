# RetinaNet with GHM-C + GHM-R (Li et al. AAAI'19) on the embedded benchmark, hyper-parameters as the
# paper's and mmdet's configs/ghm: GHM-C bins=30 momentum=0.75, GHM-R mu=0.02 bins=10 momentum=0.7
# loss_weight=10. The level-aware head keeps one moving average per FPN level (see README).
_base_ = ['./retinanet_focal.py']

model = dict(
    bbox_head=dict(
        type='LevelAwareRetinaHead',
        loss_cls=dict(_delete_=True, type='GHMC', bins=30, momentum=0.75, use_sigmoid=True,
                      loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type='GHMR', mu=0.02, bins=10, momentum=0.7,
                       loss_weight=10.0)))
