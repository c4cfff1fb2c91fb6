# RetinaNet with focal loss (./retinanet_focal.py) that finds its own mislabelled training boxes and
# leaves them out. At 20%, 40% and 60% of training mmreweight.LabelIssueHook scores every training
# annotation by the margin of the detector's belief in another class over the given label, flags
# those above a threshold set so that at most 20% of a held-out clean subset's annotations would
# be flagged (the embedded benchmark's meta split here; give yours with clean_dataloader=...), and
# from then on moves them to the ignored instances: the anchors overlapping them (IoF > 0.5) count
# neither as their given class nor as background. Each point re-scores the given labels with a
# detector trained on fewer wrong ones. Why: under class-label noise the detector, trained on a
# majority of right labels, knows most wrong ones; leaving out a fifth of the right ones costs
# less than keeping the wrong ones, and is safer than relabelling with a suggestion that is wrong
# for one flagged box in five. Neither the noise type nor its rate is used.
# Outcome: docs/study/note.md, item 18.
_base_ = ['./retinanet_focal.py']

model = dict(train_cfg=dict(assigner=dict(ignore_iof_thr=0.5)))

custom_hooks = [dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='ignore',
                     score='margin', target_fpr=0.2)]
