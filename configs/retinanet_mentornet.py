# RetinaNet with MentorNet-PD per-anchor weights (Jiang et al. ICML'18) on the embedded benchmark.
# Reference settings: percentile p=0.7 with moving-average decay 0.5; all weights 1 up to epoch 18
# of 100 (burn-in), self-paced 1[loss <= percentile] after it, SPCL-linear from epoch 90. The
# percentile is tracked separately for positive and negative anchors, since their losses differ by
# orders of magnitude; weights are normalised to mean one over valid anchors. Uses the closed-form
# schedule; fit_network=True fits the paper's MentorNet network to it instead.
# Interface: mmreweight.ReweightRetinaHead calls the hook's weighter inside its classification loss.
_base_ = ['./retinanet_focal.py']

model = dict(bbox_head=dict(type='mmreweight.ReweightRetinaHead'))

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='pd', percentile=0.7,
                       ema=0.5, burn_in=0.18, spcl_from=0.9, spcl_gamma=1.0)),
]
