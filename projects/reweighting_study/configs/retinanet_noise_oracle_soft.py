# Study method 'noise_oracle_soft': the noise oracle
# (projects/reweighting_study/configs/retinanet_noise_oracle.py) with MentorNet's burn-in and
# MentorNet-DD's measured separation: noisy annotations' anchors weigh 0.25x a clean one's
# (MentorNet-DD on the foreground gives them 0.21-0.27x the clean ones' mean weight after its
# burn-in, averaged over the logged iterations of 3 seeds at 40% uniform noise).
# Why: if this scores like MentorNet-DD, what keeps MentorNet from the oracle is the weight it leaves
# on the noise. Outcome: docs/study/note.md, item 2.
_base_ = ['./retinanet_noise_oracle.py']

custom_hooks = [dict(type='mmreweight.MetaReweightHook',
                     weighter=dict(type='mmreweight.NoiseOracleWeighter', noisy_weight=0.25,
                                   burn_in=0.18))]
