# Study method 'label_issues_mixture': the label-issue recipe of configs/retinanet_label_issues.py
# (the neighbour score) with the threshold from the mixture of the training scores against the
# clean subset's (calibration='mixture') instead of a 20% clean false-positive rate: it flags where
# a label is estimated more likely wrong than right. Why: a fixed false-positive rate leaves out a
# fifth of the correct labels whatever the noise, the hardest ones; where the flips stand apart
# (uniform noise on digits) fewer are needed, where they overlap the correct labels more may be.
_base_ = ['../../../configs/retinanet_label_issues.py']

custom_hooks = [
    dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='flag',
         score='neighbour_margin', neighbours=100, calibration='mixture'),
    dict(type='mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter')),
]
