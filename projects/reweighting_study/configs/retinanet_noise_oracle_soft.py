# The noise oracle with MentorNet-DD's measured separation (study method 'noise_oracle_soft'):
# noisy annotations' anchors weigh 0.25x a clean one's (configs/retinanet_mentornet_dd_foreground.py
# gave them 0.21-0.27x the clean ones' mean weight after its burn-in, averaged over the logged
# iterations of 3 seeds at 40% uniform noise) and the same burn-in. If this scores like
# MentorNet-DD, what keeps MentorNet from the oracle is the weight it leaves on the noise.
_base_ = ['./retinanet_noise_oracle.py']

custom_hooks = [dict(type='mmreweight.MetaReweightHook',
                     weighter=dict(type='mmreweight.NoiseOracleWeighter', noisy_weight=0.25,
                                   burn_in=0.18))]
