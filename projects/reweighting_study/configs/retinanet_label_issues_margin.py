# Study method 'label_issues_margin': label_issues_neighbours (the recipe asking the training
# annotations) with the detector's own margin as the score (score='margin': how much more it
# believes another class than the given label, over the annotation's positive anchors), the
# threshold at a 20% clean false-positive rate. Why: the first form of the recipe, kept to
# measure what the neighbour score adds; its flags are the ones `label_issues_retrain` retrains
# with.
# Outcome: docs/study/note.md, items 18 and 22.
_base_ = ['./retinanet_label_issues_neighbours.py']

custom_hooks = [
    dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='flag', score='margin',
         target_fpr=0.2),
    dict(type='mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter')),
]
