# mmdet's RetinaNet R-50 1x on COCO, with mmreweight's GHM-C/GHM-R swapped in (mmdet's own
# configs/ghm settings). Needs COCO under data/coco/ as mmdet expects.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmreweight'], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        type='mmreweight.LevelAwareRetinaHead',
        loss_cls=dict(_delete_=True, type='mmreweight.GHMC', bins=30, momentum=0.75,
                      use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type='mmreweight.GHMR', mu=0.02, bins=10, momentum=0.7,
                       loss_weight=10.0)))
optim_wrapper = dict(clip_grad=dict(_delete_=True, max_norm=35, norm_type=2))
