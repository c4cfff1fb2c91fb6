# Study variant 'mentornet_pd_fg': MentorNet-PD as configs/retinanet_mentornet.py, with the curriculum
# on the foreground anchors only: MentorNetWeighter(normalise='foreground') weights the valid
# foreground anchors, mean one over them, and background anchors keep weight 1, as the shipped L2RW
# and MW-Net configs do.
# Why: label noise lives in the annotations, while PD's self-paced phase zeroes the 30% of background
# anchors above the percentile loss, i.e. the hard negatives (28% of valid anchors at zero weight in
# the study's no-SPCL run, which scores below PD). Outcome: docs/study/note.md, items 1, 4 and 5.
_base_ = ['../../../configs/retinanet_mentornet.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='pd', percentile=0.7,
                       ema=0.5, burn_in=0.18, spcl_from=0.9, spcl_gamma=1.0,
                       normalise='foreground')),
]
