# Study method 'label_issues_neighbours': the label-issue recipe of
# configs/retinanet_label_issues.py asking each annotation's 100 nearest training annotations
# instead of the clean subset's 20 (score='neighbour_margin'), with the threshold at a 20% clean
# false-positive rate instead of the training scores' mixture (calibration='fpr',
# target_fpr=0.2). Why: the recipe's earlier form;
# the training annotations' votes are a vote the detector's own fit of a wrong label does not
# sway, but they carry the noise themselves, and the fixed rate leaves out a fifth of the correct
# labels, noisy data or not.
# Outcome: docs/study/note.md, items 22 and 25.
_base_ = ['../../../configs/retinanet_label_issues.py']

custom_hooks = [
    dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='flag',
         score='neighbour_margin', neighbours=100, target_fpr=0.2),
    dict(type='mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter')),
]
