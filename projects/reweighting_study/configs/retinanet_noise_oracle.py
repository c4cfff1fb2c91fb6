# Study method 'noise_oracle': RetinaNet (configs/retinanet_focal.py) whose classification loss drops
# exactly the anchors of noisy annotations (mmreweight.NoiseOracleWeighter). Not a method: it reads
# the embedded benchmark's record of which labels were corrupted. It measures how much of label
# noise's cost per-anchor reweighting could recover on this schedule, with the weights L2RW, MW-Net
# and MentorNet aim for. Same normalisation as the learned weighters' foreground configs: mean one
# over the valid foreground anchors, background anchors keep weight 1. Outcome: docs/study/note.md,
# items 2 and 5.
_base_ = ['../../../configs/retinanet_focal.py']

model = dict(bbox_head=dict(type='mmreweight.ReweightRetinaHead'))

custom_hooks = [dict(type='mmreweight.MetaReweightHook',
                     weighter=dict(type='mmreweight.NoiseOracleWeighter'))]
