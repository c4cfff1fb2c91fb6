# mmdet's RetinaNet R-50 1x on COCO with class-balanced focal loss; class counts read from COCO
# train2017's annotations by ClassCountsHook before training.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmreweight'], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='mmreweight.CBFocalLoss', use_sigmoid=True,
                      num_classes=80, beta=0.999,
                      gamma=2.0, loss_type='focal', loss_weight=1.0)))
custom_hooks = [dict(type='mmreweight.ClassCountsHook')]

# refuse class/label mismatches before training; stop at the first non-finite loss or parameter
default_hooks = dict(dataset_check=dict(type='mmreweight.DatasetCheckHook'),
                     non_finite=dict(type='mmreweight.NonFiniteGuardHook'))
