# Study variant 'mentornet_dd_mono': MentorNet-DD on the foreground
# (projects/reweighting_study/configs/retinanet_mentornet_dd_foreground.py) with the mentor's weights
# made non-increasing in the loss (MentorNetWeighter(monotone=True): the mentor's lower envelope).
# Not in the paper.
# Why: the data-driven mentor is fitted to a focal detector's losses, where 99% of the mislabelled
# positives lie below ~0.8. Trained under the mentor, the detector fits the noise less and noisy
# positives reach losses of 1-1.5, where some fitted mentors climb back (tools/train_mentornet_dd.py
# reports such a rise), trusting the most obviously mislabelled anchors. The envelope keeps what the
# mentor learned inside its range. Outcome: docs/study/note.md, item 3.
_base_ = ['./retinanet_mentornet_dd_foreground.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='dd',
                       mentor_checkpoint='work_dirs/mentornet_dd/mentor.pth', percentile=0.7,
                       ema=0.5, burn_in=0.18, normalise='foreground', monotone=True)),
]
