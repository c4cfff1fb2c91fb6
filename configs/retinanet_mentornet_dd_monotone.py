# MentorNet-DD on the foreground (configs/retinanet_mentornet_dd_foreground.py) with the mentor's
# weights made non-increasing in the loss (MentorNetWeighter(monotone=True), study variant
# 'mentornet_dd_mono'; not in the paper). Why: the data-driven mentor is fitted to a focal
# detector's losses, where 99% of the mislabelled positives lie below ~0.8. Trained under the mentor,
# the detector fits the noise less and the noisy positives' losses reach 1–1.5, where the network
# extrapolates back up to v ~ 0.5–0.6 (measured on the study's 40%-uniform mentor); those anchors,
# the most obviously mislabelled, were most of the noisy weight left by mentornet_dd_hard. The
# lower envelope keeps what the mentor learned inside its range and stops it trusting higher losses.
_base_ = ['./retinanet_mentornet_dd_foreground.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='dd',
                       mentor_checkpoint='work_dirs/mentornet_dd/mentor.pth', percentile=0.7,
                       ema=0.5, burn_in=0.18, normalise='foreground', monotone=True)),
]
