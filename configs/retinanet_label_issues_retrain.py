# Clean and retrain: RetinaNet with focal loss trained from scratch on a training set whose
# mislabelled boxes an earlier run found, their labels left out of the classification loss from
# the first iteration (mmreweight.LabelIssueWeighter, as in ./retinanet_label_issues.py; boxes
# still train the box regression). The flags come from flags_from: the work dir of a
# ./retinanet_label_issues.py run (its last scoring point, calibrated on the clean subset) or the
# label_issues.json of tools/find_label_issues.py, e.g.
#   python tools/train.py configs/retinanet_label_issues_retrain.py \
#       --cfg-options custom_hooks.0.flags_from=work_dirs/retinanet_label_issues
# Why: in a single run the flags act only from their first scoring point on, after the detector
# has trained on every wrong label; retraining with them from the start never sees most of those.
# Costs a second training run. Neither the noise type nor its rate is used.
_base_ = ['./retinanet_label_issues.py']

custom_hooks = [
    # flags_from=None stops the run with a message until the earlier run is given
    dict(type='mmreweight.LabelIssueHook', score_at=(), action='flag', flags_from=None),
    dict(type='mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter')),
]
