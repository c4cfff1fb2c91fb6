# Study method 'label_issues_neighbours': the label-issue recipe
# (configs/retinanet_label_issues.py) with the neighbour score: each annotation is scored by the
# given labels of the 100 training annotations nearest to it in the detector's class
# probabilities (score='neighbour_margin'), at a 20% clean false-positive rate. Why: the
# detector's own margin of an annotation includes what it fitted of that annotation's wrong
# label; its neighbours' labels do not.
_base_ = ['../../../configs/retinanet_label_issues.py']

custom_hooks = [
    dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='flag',
         score='neighbour_margin', neighbours=100, target_fpr=0.2),
    dict(type='mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter')),
]
