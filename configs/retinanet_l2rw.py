# RetinaNet with per-anchor learning-to-reweight (L2RW, Ren et al. ICML'18) on the embedded
# benchmark. Each iteration: the clean gradient g_c of the loss on a batch of the held-out 'meta'
# split (clean, class-balanced) w.r.t. theta = the classification output conv; each foreground
# anchor's weight is max(0, <grad l_a, g_c>), mean one over the foreground anchors; background
# anchors keep weight 1 (normalise='foreground'). The paper's normalisation over every example
# (normalise='mean_one') would put the whole weight on the ~1% of anchors that are foreground in a
# fresh detector, whose gradients dominate the dot products, and starve the background.
_base_ = ['./retinanet_focal.py']

model = dict(bbox_head=dict(type='mmreweight.ReweightRetinaHead'))

# The clean subset: the benchmark's held-out, class-balanced 'meta' split, with the training
# pipeline. The base pipeline packs each annotation's noise flag, which the head uses to log the
# mean weight of anchors matched to noisy vs clean annotations (train/meta_w_noisy, _clean).
clean_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type='EmbeddedDetectionDataset', benchmark={{_base_.benchmark}}, split='meta',
                 filter_cfg=dict(filter_empty_gt=True, min_size=4),
                 pipeline={{_base_.train_pipeline}}))

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.L2RWWeighter', theta='cls_out', normalise='foreground'),
         clean_dataloader=clean_dataloader, interval=1),
]
