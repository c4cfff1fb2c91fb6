# Study variant 'mentornet_dd_hard': MentorNet-DD on the foreground
# (projects/reweighting_study/configs/retinanet_mentornet_dd_foreground.py) with hard weights,
# v -> 1[v >= 0.5] (threshold=0.5): the data-driven mentor's own decision (it is trained to predict
# whether an anchor's label is clean). Not in the paper.
# Why: the noise oracle with DD's measured noisy/clean weight ratio (0.25, 'noise_oracle_soft')
# scores like DD; if the weight DD leaves on the noise is soft values, thresholding removes it.
# Outcome (docs/study/note.md, item 2): it does not; the residue is noisy annotations the mentor
# calls clean. Not a recommended config.
_base_ = ['./retinanet_mentornet_dd_foreground.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='dd',
                       mentor_checkpoint='work_dirs/mentornet_dd/mentor.pth', percentile=0.7,
                       ema=0.5, burn_in=0.18, normalise='foreground', threshold=0.5)),
]
