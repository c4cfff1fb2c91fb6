# MentorNet-DD on the foreground (configs/retinanet_mentornet_dd_foreground.py) with hard weights:
# v -> 1[v >= 0.5], the data-driven mentor's own decision (it is trained to predict whether an
# anchor's label is clean). Not in the paper (study variant 'mentornet_dd_hard'). Why it was tried:
# the study's noise oracle with DD's measured noisy/clean weight ratio (0.25, 'noise_oracle_soft')
# scores like DD. Measured (40% uniform noise, seed 0): 0.778 against DD-foreground's 0.790; noisy
# positives still get 0.22x the clean ones' weight, i.e. the residue is noisy annotations the mentor
# calls clean, not soft values. Kept as the record of that test; not a recommended config.
_base_ = ['./retinanet_mentornet_dd_foreground.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='dd',
                       mentor_checkpoint='work_dirs/mentornet_dd/mentor.pth', percentile=0.7,
                       ema=0.5, burn_in=0.18, normalise='foreground', threshold=0.5)),
]
