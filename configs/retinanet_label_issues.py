# RetinaNet with focal loss (./retinanet_focal.py) that finds its own mislabelled training boxes and
# leaves their labels out. At 20%, 40% and 60% of training mmreweight.LabelIssueHook gives every
# training annotation the detector's mean class probabilities over its positive anchors and scores
# it by the vote of the 20 annotations of a held-out clean subset nearest in those probabilities:
# how many more of them carry another label than its given one (score='clean_neighbour_margin';
# the embedded benchmark's meta split here, give yours with clean_dataloader=...). It flags where a
# label is estimated more likely wrong than right: the training scores are read as a mixture of
# correct labels, scored as the clean subset's are, and wrong ones (calibration='mixture'), so on
# clean data it flags next to nothing. From then on mmreweight.LabelIssueWeighter gives the flagged
# annotations' anchors weight 0 in the classification loss (mean one over the foreground, as the
# noise oracle); their boxes still train the box regression. Each point re-scores the given labels
# with a detector trained on fewer wrong ones. Why: the detector, trained on a majority of right
# labels, knows most wrong ones; the clean subset's labels are right, where the training
# annotations' carry the noise (under pair flips a flipped box's training neighbours vote for its
# true class by 60 : 40 at best). Neither the noise type nor its rate is used.
# Outcome: docs/study/note.md, item 25.
_base_ = ['./retinanet_focal.py']

model = dict(bbox_head=dict(type='mmreweight.ReweightRetinaHead'))

custom_hooks = [
    dict(type='mmreweight.LabelIssueHook', score_at=(0.2, 0.4, 0.6), action='flag',
         score='clean_neighbour_margin', neighbours=20, calibration='mixture'),
    dict(type='mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter')),
]
