# Study variant 'l2rw_head': L2RW (configs/retinanet_l2rw.py) with theta = the whole head (both towers
# and output convs) instead of cls_out, and a clean batch of 32 images instead of 8. Dearer per
# iteration than the base config.
# Why: tools/diagnose.py --clean-batches on the 40%-noise study run of the base config shows its
# weights to be a coin flip on which clean batch is drawn (whether a positive's weight is zero agrees
# on 50% of positives between two clean batches; clean-vs-noisy AUC 0.54); with theta = 'head' and
# 32 clean images the AUC is 0.77 (0.89 averaged over 4 clean batches). The hypothesis: a wider theta
# and a larger clean batch make the weights separate noisy from clean annotations in training.
# Outcome: the study report's tables (docs/study/README.md, 2 seeds) and docs/study/note.md, item 5
# (the (class, shape) gate that theta = cls_out imposes).
_base_ = ['../../../configs/retinanet_l2rw.py']

# configs/retinanet_l2rw.py's clean dataloader with batch_size=32, spelt out: custom_hooks is a list,
# which an mmengine child config replaces whole, and a {{_base_.x}} value cannot be edited in place.
clean_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type='EmbeddedDetectionDataset', benchmark={{_base_.benchmark}}, split='meta',
                 filter_cfg=dict(filter_empty_gt=True, min_size=4),
                 pipeline={{_base_.train_pipeline}}))

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.L2RWWeighter', theta='head', normalise='foreground'),
         clean_dataloader=clean_dataloader, interval=1),
]
