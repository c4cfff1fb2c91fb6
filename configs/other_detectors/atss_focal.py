# ATSS (Zhang et al. CVPR'20) on the embedded benchmark with focal loss: mmdet's ATSS head settings
# (atss_r50_fpn_1x_coco.py: one anchor per location, ATSS assigner top-9, focal classification,
# GIoU box loss weight 2, centre-ness) on the embedded RetinaNet's backbone, 3-level FPN (strides
# 8-32), data and schedule. Anchors of 32-128 px (octave_base_scale 4) for 20-48 px objects.
# The baseline of atss_ghm.py.
_base_ = ['../retinanet_focal.py']

model = dict(
    type='ATSS',
    bbox_head=dict(
        _delete_=True,
        type='ATSSHead',
        num_classes={{_base_.num_classes}},
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4,
                              scales_per_octave=1, strides=[8, 16, 32]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(_delete_=True, assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1,
                   pos_weight=-1, debug=False),
    test_cfg=dict(nms=dict(type='nms', iou_threshold=0.6)))
