# Study method 'label_issues_relabel_sure': the label-issue recipe
# (../../../configs/retinanet_label_issues.py) that gives a flagged annotation its suggested label
# when that outvotes the given one by 18 of its 20 clean neighbours (relabel_above=0.9) and leaves
# the other flags' labels out, as the recipe does. Why: leaving a flipped label out gives up its
# object's class, the noise oracle's ceiling (0.638 on Fashion-MNIST with 40% uniform noise, 72% of
# the gap); relabelling it right gives the class back, and the clean neighbours' suggestion is
# right for about nine in ten of the flags they agree on that strongly (a scratch count on the
# recipe's round files), against seven in ten of all flags.
# Outcome: docs/study/note.md, item 25.
_base_ = ['../../../configs/retinanet_label_issues.py']

custom_hooks = [
    dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='flag',
         score='clean_neighbour_margin', neighbours=20, calibration='mixture', relabel_above=0.9),
    dict(type='mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter')),
]
