# FCOS with GHM-C for classification (fcos_focal.py otherwise): the paper's bins and momentum,
# warming up from focal loss over the first 500 iterations as in configs/retinanet_ghm.py. FCOS
# regresses distances with an IoU loss, so GHM-R does not apply; its box loss stays IoU. mmdet's
# FCOS head already calls the loss once over all FPN levels: the density spans the whole batch.
# As in configs/retinanet_ghm.py, focal loss's balance of positive and negative targets
# (alpha=0.25).
_base_ = ['./fcos_focal.py']

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='GHMC', bins=30, momentum=0.75, use_sigmoid=True,
                      loss_weight=1.0, warmup_iters=500, num_levels=1, alpha=0.25)))
custom_hooks = [dict(type='GHMStateHook')]
