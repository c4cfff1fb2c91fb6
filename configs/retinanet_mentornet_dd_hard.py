# MentorNet-DD on the foreground (configs/retinanet_mentornet_dd_foreground.py) with hard weights:
# v -> 1[v >= 0.5], the data-driven mentor's own decision (it is trained to predict whether an
# anchor's label is clean). Not in the paper (study variant 'mentornet_dd_hard'). Why: the study's
# noise oracle with DD's measured noisy/clean weight ratio (0.25, 'noise_oracle_soft') scores like
# DD, the oracle with weight 0 on the noise 0.02-0.03 mAP higher; the soft weights leave the noise
# its share of the gradient.
_base_ = ['./retinanet_mentornet_dd_foreground.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='dd',
                       mentor_checkpoint='work_dirs/mentornet_dd/mentor.pth', percentile=0.7,
                       ema=0.5, burn_in=0.18, normalise='foreground', threshold=0.5)),
]
