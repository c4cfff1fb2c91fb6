# Study method 'label_issues_ignore': the label-issue recipe (its margin form, label_issues_margin)
# that moves each flagged annotation to the ignored instances (the assigner then leaves the
# anchors overlapping it out of both losses, box regression included) instead of zeroing its
# anchors' classification weight. Works with any mmdet head. Why: to measure what losing the
# flagged boxes' regression and their neighbouring negatives costs. Outcome: docs/study/note.md,
# item 18.
_base_ = ['../../../configs/retinanet_focal.py']

model = dict(train_cfg=dict(assigner=dict(ignore_iof_thr=0.5)))

custom_hooks = [dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='ignore',
                     score='margin', target_fpr=0.2)]
