# Study variant 'mentornet_dd_fg': MentorNet-DD as configs/retinanet_mentornet_dd.py, with the
# mentor's weights on the foreground anchors only (MentorNetWeighter(normalise='foreground'): mean one
# over the valid foreground anchors, background anchors keep weight 1). The mentor file is made the
# same way.
# Why: label noise lives in the annotations; see
# projects/reweighting_study/configs/retinanet_mentornet_foreground.py for what the restriction does
# to MentorNet-PD. Outcome: docs/study/note.md, items 1 and 4 (and 3, 5 under pair-flip).
_base_ = ['../../../configs/retinanet_mentornet_dd.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='dd',
                       mentor_checkpoint='work_dirs/mentornet_dd/mentor.pth', percentile=0.7,
                       ema=0.5, burn_in=0.18, normalise='foreground')),
]
