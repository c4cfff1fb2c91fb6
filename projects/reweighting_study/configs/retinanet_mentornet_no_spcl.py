# MentorNet-PD as configs/retinanet_mentornet.py, but without its last phase (study variant
# 'mentornet_pd_no_spcl'): burn-in to epoch 18, then self-paced 1[loss <= percentile] to the end.
# In the study the PD run separated noisy from clean positives during training (mean weight ratio
# 0.43 at 40% uniform noise) and its SPCL-linear phase from epoch 90 weighted the noisy positives back
# up (0.65 at the end); this variant tests whether that phase is what keeps PD level with focal.
# Measured: it is not. Without it PD scores 0.673 (seed 0; PD 0.728), as the self-paced phase keeps
# the hardest 30% of background anchors at weight 0 (see configs/retinanet_mentornet_foreground.py).
_base_ = ['../../../configs/retinanet_mentornet.py']

# spcl_from=1.0 names epoch 100; progress maps to epochs 0..99, so the SPCL phase never starts
custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='pd', percentile=0.7,
                       ema=0.5, burn_in=0.18, spcl_from=1.0, spcl_gamma=1.0)),
]
