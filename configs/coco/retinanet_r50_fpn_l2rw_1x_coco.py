# mmdet's RetinaNet R-50 1x on COCO with per-anchor L2RW. COCO has no held-out clean split, so
# 1000 class-balanced train2017 images (seeded) are split off as the clean set and removed from
# training (mmreweight.CleanSplit, part='train' / part='clean' with the same arguments; the hook
# checks the two are disjoint). Only the foreground anchors are reweighted (background keeps weight
# 1): normalised over every anchor, the weights of a dense head land on the ~1% foreground anchors
# and starve the background. Needs COCO under data/coco/ as mmdet expects.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmreweight'], allow_failed_imports=False)

model = dict(bbox_head=dict(type='mmreweight.ReweightRetinaHead'))

clean_split = dict(num=1000, seed=0, class_balanced=True)
train_dataloader = dict(
    dataset=dict(_delete_=True, type='mmreweight.CleanSplit', part='train',
                 dataset={{_base_.train_dataloader.dataset}}, **clean_split))
clean_dataloader = dict(
    batch_size={{_base_.train_dataloader.batch_size}},
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type='mmreweight.CleanSplit', part='clean',
                 dataset={{_base_.train_dataloader.dataset}}, **clean_split))

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.L2RWWeighter', theta='cls_out', normalise='foreground'),
         clean_dataloader=clean_dataloader, interval=1),
]

# refuse class/label mismatches before training; stop at the first non-finite loss or parameter
default_hooks = dict(dataset_check=dict(type='mmreweight.DatasetCheckHook'),
                     non_finite=dict(type='mmreweight.NonFiniteGuardHook'))
