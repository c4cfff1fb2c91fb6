# Study variant 'mentornet_dd_mono_hard': MentorNet-DD on the foreground with the mentor's monotone
# envelope and hard weights, v -> 1[v >= 0.5] (monotone=True, threshold=0.5; neither is in the paper).
# Why both: the threshold zeroes the mentor's floor (noisy positives at loss 0.5-0.8 keep
# v ~ 0.1-0.25), and the envelope stops a rising mentor
# (projects/reweighting_study/configs/retinanet_mentornet_dd_monotone.py) from passing the threshold
# at high losses. Outcome: docs/study/note.md, item 3.
_base_ = ['./retinanet_mentornet_dd_foreground.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='dd',
                       mentor_checkpoint='work_dirs/mentornet_dd/mentor.pth', percentile=0.7,
                       ema=0.5, burn_in=0.18, normalise='foreground', monotone=True,
                       threshold=0.5)),
]
