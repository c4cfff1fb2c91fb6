# RetinaNet with focal loss (./retinanet_focal.py) that finds its own mislabelled training boxes and
# relabels them. At 20%, 40% and 60% of training mmreweight.LabelIssueHook scores every training
# annotation by the margin of the detector's belief in another class over the given label, flags
# those above a threshold set so that at most 5% of a held-out clean subset's annotations would be
# flagged (the embedded benchmark's meta split here; give yours with clean_dataloader=...), and
# from then on trains them with the class the detector suggests. Each point re-scores the given
# labels with a detector trained on fewer wrong ones. Why: under class-label noise the detector,
# trained on a majority of right labels, knows most wrong ones; correcting them recovers what
# per-anchor reweighting cannot. Neither the noise type nor its rate is used.
# Outcome: docs/study/note.md, item 18.
_base_ = ['./retinanet_focal.py']

custom_hooks = [dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='relabel',
                     score='margin', target_fpr=0.05)]
