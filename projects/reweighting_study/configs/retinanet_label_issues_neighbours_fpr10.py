# Study method 'label_issues_neighbours_fpr10': label_issues_neighbours (the recipe asking the
# training annotations) with the threshold at a 10% clean false-positive rate instead of 20%.
# Why: fewer correct labels left out, more wrong ones kept; to see which costs more under each
# noise type.
# Outcome: docs/study/note.md, item 22.
_base_ = ['./retinanet_label_issues_neighbours.py']

custom_hooks = [
    dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='flag',
         score='neighbour_margin', neighbours=100, target_fpr=0.1),
    dict(type='mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter')),
]
