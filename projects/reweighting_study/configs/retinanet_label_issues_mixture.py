# Study method 'label_issues_mixture': label_issues_neighbours (the recipe asking the training
# annotations) with the threshold from the mixture of the training scores against the clean
# subset's (calibration='mixture') instead of a 20% clean false-positive rate: it flags where a
# label is estimated more likely wrong than right. Why: a fixed false-positive rate leaves out a
# fifth of the correct labels whatever the noise, the hardest ones; where the flips stand apart
# (uniform noise on digits) fewer are needed, where they overlap the correct labels more may be.
# Outcome: docs/study/note.md, item 25.
_base_ = ['./retinanet_label_issues_neighbours.py']

custom_hooks = [
    dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='flag',
         score='neighbour_margin', neighbours=100, calibration='mixture'),
    dict(type='mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter')),
]
