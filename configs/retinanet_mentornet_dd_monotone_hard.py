# MentorNet-DD on the foreground with the mentor's monotone envelope and hard weights, v -> 1[v >= 0.5]
# (study variant 'mentornet_dd_mono_hard'; neither is in the paper). Why both: measured on the
# study's 40%-uniform mentor, the noisy weight left by DD-foreground comes from two places. The
# mentor's floor: noisy positives at loss 0.5-0.8 still get v ~ 0.1-0.25, which the threshold zeroes.
# Its rising tail: at loss >= 1 v climbs back to 0.5-0.6, which the threshold alone keeps at 1
# (configs/retinanet_mentornet_dd_hard.py) and the envelope alone only lowers to the floor
# (configs/retinanet_mentornet_dd_monotone.py).
_base_ = ['./retinanet_mentornet_dd_foreground.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='dd',
                       mentor_checkpoint='work_dirs/mentornet_dd/mentor.pth', percentile=0.7,
                       ema=0.5, burn_in=0.18, normalise='foreground', monotone=True,
                       threshold=0.5)),
]
