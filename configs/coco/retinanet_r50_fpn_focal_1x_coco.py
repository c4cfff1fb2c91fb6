# mmdet's RetinaNet R-50 1x on COCO, with mmreweight's focal loss (identical values to mmdet's;
# twice differentiable on every device, which meta-reweighting needs).
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmreweight'], allow_failed_imports=False)

model = dict(bbox_head=dict(loss_cls=dict(type='mmreweight.FocalLoss')))

# refuse class/label mismatches before training; stop at the first non-finite loss or parameter
default_hooks = dict(dataset_check=dict(type='mmreweight.DatasetCheckHook'),
                     non_finite=dict(type='mmreweight.NonFiniteGuardHook'))
