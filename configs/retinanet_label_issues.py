# RetinaNet with focal loss (./retinanet_focal.py) that finds its own mislabelled training boxes and
# leaves their labels out. At 20%, 40% and 60% of training mmreweight.LabelIssueHook scores every
# training annotation by the margin of the detector's belief in another class over the given label
# and flags those above a threshold set so that at most 20% of a held-out clean subset's
# annotations would be flagged (the embedded benchmark's meta split here; give yours with
# clean_dataloader=...). From then on mmreweight.LabelIssueWeighter gives the flagged annotations'
# anchors weight 0 in the classification loss (mean one over the foreground, as the noise oracle);
# their boxes still train the box regression. Each point re-scores the given labels with a detector
# trained on fewer wrong ones. Why: under class-label noise the detector, trained on a majority of
# right labels, knows most wrong ones; leaving out a fifth of the right labels costs less than
# keeping the wrong ones. Neither the noise type nor its rate is used.
# Outcome: docs/study/note.md, item 18.
_base_ = ['./retinanet_focal.py']

model = dict(bbox_head=dict(type='mmreweight.ReweightRetinaHead'))

custom_hooks = [
    dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='flag', score='margin',
         target_fpr=0.2),
    dict(type='mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter')),
]
