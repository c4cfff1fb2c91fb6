# Study variant 'mentornet_pd_no_spcl': MentorNet-PD as configs/retinanet_mentornet.py without its
# last phase: burn-in to epoch 18, then self-paced 1[loss <= percentile] to the end (no SPCL-linear
# phase from epoch 90).
# Why: the PD study run separates noisy from clean positives during training (mean weight ratio 0.43
# at 40% uniform noise) and its SPCL-linear phase weights the noisy positives back up (0.65 at the
# end); this variant tests whether that phase is what keeps PD level with focal. Outcome
# (docs/study/note.md, item 4): it is not; without it the self-paced phase keeps the hardest 30% of
# background anchors at weight 0 and PD scores lower.
_base_ = ['../../../configs/retinanet_mentornet.py']

# spcl_from=1.0 names epoch 100; progress maps to epochs 0..99, so the SPCL phase never starts
custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='pd', percentile=0.7,
                       ema=0.5, burn_in=0.18, spcl_from=1.0, spcl_gamma=1.0)),
]
