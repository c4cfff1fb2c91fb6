# Study method 'label_issues_relabel': the label-issue recipe (its margin form, label_issues_margin)
# that gives each flagged annotation the class the detector suggests instead of leaving its label
# out, at a 5% clean false-positive rate (a wrong suggestion turns a right label wrong, so fewer
# flags). Plain RetinaHead, no weighter. Why: to compare what relabelling and leaving out recover.
# Outcome: docs/study/note.md, item 18.
_base_ = ['../../../configs/retinanet_focal.py']

custom_hooks = [dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='relabel',
                     score='margin', target_fpr=0.05)]
