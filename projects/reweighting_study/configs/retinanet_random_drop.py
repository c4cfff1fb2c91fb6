# Study control 'random_drop': RetinaNet (configs/retinanet_focal.py) whose classification loss
# gives weight 0 to a random 52% of the valid foreground anchors of every batch and scales the rest
# to mean one (reweighting_study.random_drop.RandomPositiveDropWeighter); background anchors keep
# weight 1. 52% is the share L2RW (configs/retinanet_l2rw.py) zeroes over training on digits with
# 40% uniform noise at 12,000 iterations (1 - train/meta_align_pos_frac, mean of 3 seeds: 0.52,
# 0.53, 0.53). Why: there L2RW beats focal while its weights rank clean and noisy positives at
# chance; if this control gains as much, dropping half the positives is what helps, not which
# ones L2RW drops. Outcome: docs/study/converged/note.md.
_base_ = ['../../../configs/retinanet_focal.py']

custom_imports = dict(imports=['mmreweight',
                              'projects.reweighting_study.reweighting_study.random_drop'],
                      allow_failed_imports=False)

model = dict(bbox_head=dict(type='mmreweight.ReweightRetinaHead'))

custom_hooks = [dict(type='mmreweight.MetaReweightHook',
                     weighter=dict(type='mmreweight.RandomPositiveDropWeighter', drop_rate=0.52))]
