# Study method 'noise_oracle_burn_in': the noise oracle
# (projects/reweighting_study/configs/retinanet_noise_oracle.py) with MentorNet's burn-in: the
# unweighted loss while the MentorNet epoch is <= 18 of 100, the oracle's weights after.
# Why: to measure how much of MentorNet's shortfall against the oracle comes from the unweighted
# start rather than from the weights it learns. Outcome: docs/study/note.md, item 2.
_base_ = ['./retinanet_noise_oracle.py']

custom_hooks = [dict(type='mmreweight.MetaReweightHook',
                     weighter=dict(type='mmreweight.NoiseOracleWeighter', burn_in=0.18))]
