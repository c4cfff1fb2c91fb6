# MentorNet-DD as configs/retinanet_mentornet_dd.py, with the mentor's weights on the foreground
# anchors only (study variant 'mentornet_dd_fg'): MentorNetWeighter(normalise='foreground'), see
# configs/retinanet_mentornet_foreground.py for why. The mentor file is made the same way.
_base_ = ['../../../configs/retinanet_mentornet_dd.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='dd',
                       mentor_checkpoint='work_dirs/mentornet_dd/mentor.pth', percentile=0.7,
                       ema=0.5, burn_in=0.18, normalise='foreground')),
]
