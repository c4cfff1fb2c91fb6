# mmdet's RetinaNet R-50 1x on COCO with mmreweight's GHM-C/GHM-R swapped in. Against mmdet's
# configs/ghm/retinanet_ghm_r50_fpn_1x_coco.py (same bins, momenta and loss weights):
# - both losses warm up over the first 2,000 iterations (GHM-C from focal loss, GHM-R from the
#   unweighted authentic smooth L1), which GHM's authors advise for new tasks;
# - GHM-R's mu is the median |box delta| of those iterations (mu='auto') instead of 0.02;
# - one loss call over the anchors of all FPN levels (JointLevelRetinaHead), so that the gradient
#   density is counted over every example of the batch, as the paper defines it; mmdet's head
#   calls the loss level by level, each level's loss then being a mean over its own bins;
# - GHM-C balances positive and negative targets as focal loss does (alpha=0.25), which the
#   embedded benchmark needed to reach focal loss (measured there only).
# paper_exact=True on both losses, alpha=None, mu=0.02 and type='RetinaHead' give mmdet's recipe.
# Needs COCO under data/coco/ as mmdet expects.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmreweight'], allow_failed_imports=False)

ghm_warmup_iters = 2000
model = dict(
    bbox_head=dict(
        type='mmreweight.JointLevelRetinaHead',
        loss_cls=dict(_delete_=True, type='mmreweight.GHMC', bins=30, momentum=0.75,
                      use_sigmoid=True, loss_weight=1.0, warmup_iters=ghm_warmup_iters,
                      num_levels=1, alpha=0.25),
        loss_bbox=dict(_delete_=True, type='mmreweight.GHMR', mu='auto',
                       mu_calibration_iters=ghm_warmup_iters, bins=10, momentum=0.7,
                       loss_weight=10.0, warmup_iters=ghm_warmup_iters, num_levels=1)))
optim_wrapper = dict(clip_grad=dict(_delete_=True, max_norm=35, norm_type=2))

# refuse class/label mismatches before training; stop at the first non-finite loss or parameter
default_hooks = dict(dataset_check=dict(type='mmreweight.DatasetCheckHook'),
                     non_finite=dict(type='mmreweight.NonFiniteGuardHook'))
# warm-up share, mu and the gradient-density histograms in the log and the work dir
custom_hooks = [dict(type='mmreweight.GHMStateHook')]
