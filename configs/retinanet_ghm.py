# RetinaNet with GHM-C + GHM-R (Li et al. AAAI'19) on the embedded benchmark. The paper's bins and
# momenta (GHM-C bins=30 momentum=0.75, GHM-R bins=10 momentum=0.7) with the losses' warm-up:
# over the first 500 iterations GHM-C moves from focal loss to the harmonized loss and GHM-R from
# the unweighted authentic smooth L1 to the harmonized one, and GHM-R's mu is the median |box
# delta| of those iterations instead of COCO's 0.02 (which puts most deltas of an untrained
# detector in GHM-R's top bin). From iteration 500 on the losses are the paper's.
# GHM-R's loss_weight 4: N counts the 4 coordinates of every positive, so at the start of the
# warm-up its scale is that of focal's L1 box loss (summed over coordinates, divided by
# positives). paper_exact=True on both losses gives the paper's recipe from iteration 0.
# The level-aware head keeps one moving average per FPN level.
_base_ = ['./retinanet_focal.py']

ghm_warmup_iters = 500
model = dict(
    bbox_head=dict(
        type='LevelAwareRetinaHead',
        loss_cls=dict(_delete_=True, type='GHMC', bins=30, momentum=0.75, use_sigmoid=True,
                      loss_weight=1.0, warmup_iters=ghm_warmup_iters),
        loss_bbox=dict(_delete_=True, type='GHMR', mu='auto', mu_calibration_iters=500,
                       bins=10, momentum=0.7, loss_weight=4.0, warmup_iters=ghm_warmup_iters)))
# warm-up share, mu and the gradient-density histograms in the log and the work dir
custom_hooks = [dict(type='GHMStateHook')]
