# GHM-C alone: the classification loss of configs/retinanet_ghm.py (bins=30, momentum=0.75) with the
# focal config's L1 box loss, to tell which half of GHM (C or R) costs accuracy on the embedded
# benchmark (study variant 'ghm_c').
_base_ = ['../../../configs/retinanet_focal.py']

model = dict(
    bbox_head=dict(
        type='LevelAwareRetinaHead',
        loss_cls=dict(_delete_=True, type='GHMC', bins=30, momentum=0.75, use_sigmoid=True,
                      loss_weight=1.0)))
