# The embedded real-image benchmark: MNIST digits on 128x128 canvases, made by
# mmreweight.EmbeddedDetectionDataset on first use (see tools/make_benchmark.py).
# Variants (noise, long tail, Fashion-MNIST) change `benchmark` only; the data root is derived from it
# ($MMREWEIGHT_DATA_ROOT or ~/.cache/mmreweight/benchmarks/<name>), so configs run from any folder.
dataset_type = 'EmbeddedDetectionDataset'
benchmark = dict(source='mnist', seed=0, noise_type='none', noise_rate=0.0, imbalance_ratio=1.0)

# Canvases are already 128x128: Resize is an identity here but records the scale_factor that
# mmdet's heads and CocoMetric expect. The clean-label transforms carry each annotation's true label
# and noise flag to the head, so reweighting logs can compare weights on noisy vs clean annotations.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='LoadCleanLabels'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputsWithCleanLabels'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    # 'instances' lets CocoMetric build its COCO ground truth from the dataset itself (ann_file=None)
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'instances')),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type=dataset_type, benchmark=benchmark, split='train',
                 filter_cfg=dict(filter_empty_gt=True, min_size=4), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, benchmark=benchmark, split='val', test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, benchmark=benchmark, split='test', test_mode=True,
                 pipeline=test_pipeline))

# mmdet's CocoMetric (pycocotools) with per-class AP; the ground truth comes from the dataset.
val_evaluator = dict(type='CocoMetric', ann_file=None, metric='bbox', classwise=True)
test_evaluator = val_evaluator
