# RetinaNet with focal loss (./retinanet_focal.py) that finds its own mislabelled training boxes and
# leaves their labels out. At 20%, 40% and 60% of training mmreweight.LabelIssueHook gives every
# training annotation the detector's mean class probabilities over its positive anchors and scores
# it by the vote of the 100 training annotations nearest in those probabilities: how many more of
# them carry another label than its given one (score='neighbour_margin'). It flags those above a
# threshold set so that at most 20% of a held-out clean subset's annotations would be flagged (the
# embedded benchmark's meta split here; give yours with clean_dataloader=...). From then on
# mmreweight.LabelIssueWeighter gives the flagged annotations' anchors weight 0 in the
# classification loss (mean one over the foreground, as the noise oracle); their boxes still train
# the box regression. Each point re-scores the given labels with a detector trained on fewer wrong
# ones. Why: under class-label noise the detector, trained on a majority of right labels, knows
# most wrong ones; an annotation's own probabilities carry what the detector fitted of its wrong
# label, its neighbours' labels do not. Neither the noise type nor its rate is used.
# Outcome: docs/study/note.md, item 22.
_base_ = ['./retinanet_focal.py']

model = dict(bbox_head=dict(type='mmreweight.ReweightRetinaHead'))

custom_hooks = [
    dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='flag',
         score='neighbour_margin', neighbours=100, target_fpr=0.2),
    dict(type='mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter')),
]
