# Study method 'label_issues_clean_neighbours': label_issues_neighbours (the recipe asking the
# training annotations) with each annotation asked of its 20 nearest annotations of the
# clean subset instead of its 100 nearest training annotations (score='clean_neighbour_margin').
# Why: under pair-flip noise the training neighbours' labels carry the noise (40% of a class's
# boxes labelled as the next class), so a flipped box's training neighbours vote for its true
# class by 60 : 40 at best; the clean subset's labels are right. 20 of the meta split's ~500
# annotations, about 50 a class, keep the vote local. With the mixture threshold this is
# configs/retinanet_label_issues.py.
# Outcome: docs/study/note.md, item 25.
_base_ = ['./retinanet_label_issues_neighbours.py']

custom_hooks = [
    dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='flag',
         score='clean_neighbour_margin', neighbours=20, target_fpr=0.2),
    dict(type='mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter')),
]
