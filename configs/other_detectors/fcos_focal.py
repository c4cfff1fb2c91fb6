# FCOS (Tian et al. ICCV'19) on the embedded benchmark with focal loss: mmdet's FCOS head settings
# (fcos_r50-caffe_fpn_gn-head_1x_coco.py: focal classification, IoU box loss, centre-ness, GN head
# convs) on the embedded RetinaNet's backbone, 3-level FPN (strides 8-32), data and schedule.
# The baseline of fcos_ghm.py. Regression ranges follow the strides for 20-48 px objects.
_base_ = ['../retinanet_focal.py']

model = dict(
    type='FCOS',
    bbox_head=dict(
        _delete_=True,
        type='FCOSHead',
        num_classes={{_base_.num_classes}},
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        strides=[8, 16, 32],
        regress_ranges=((-1, 32), (32, 64), (64, 1e8)),
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=None)
