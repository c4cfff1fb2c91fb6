# ATSS with GHM-C for classification (atss_focal.py otherwise): the paper's bins and momentum,
# warming up from focal loss over the first 500 iterations as in configs/retinanet_ghm.py. ATSS
# regresses decoded boxes with a GIoU loss, so GHM-R does not apply; its box loss stays GIoU.
# As in configs/retinanet_ghm.py, one loss call over the anchors of all FPN levels
# (JointLevelATSSHead), so that the gradient density is counted over the whole batch, and
# focal loss's balance of positive and negative targets (alpha=0.25).
_base_ = ['./atss_focal.py']

model = dict(
    bbox_head=dict(
        type='JointLevelATSSHead',
        loss_cls=dict(_delete_=True, type='GHMC', bins=30, momentum=0.75, use_sigmoid=True,
                      loss_weight=1.0, warmup_iters=500, num_levels=1, alpha=0.25)))
custom_hooks = [dict(type='GHMStateHook')]
