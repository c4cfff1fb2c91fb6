# Baseline: a narrow RetinaNet (ResNet-18 at 1/4 width, 3-level FPN, 2 stacked GN head convs) trained
# from scratch on the embedded digits benchmark with focal loss. Every other embedded config
# inherits this one and changes the loss or adds a reweighting hook.
_base_ = ['./_base_/embedded_digits.py']

default_scope = 'mmreweight'
custom_imports = dict(imports=['mmreweight'], allow_failed_imports=False)

num_classes = 10
model = dict(
    type='RetinaNet',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[33.0, 33.0, 33.0], std=[78.0, 78.0, 78.0],
        bgr_to_rgb=False, pad_size_divisor=32),
    backbone=dict(
        type='ResNet', depth=18, base_channels=16, num_stages=4, out_indices=(1, 2, 3),
        frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
        style='pytorch', init_cfg=None),  # from scratch: nothing may be downloaded
    neck=dict(type='FPN', in_channels=[32, 64, 128], out_channels=64, start_level=0,
              add_extra_convs=False, num_outs=3),
    bbox_head=dict(
        type='RetinaHead',
        num_classes=num_classes,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        # GroupNorm in the head convs: trained from scratch at lr 0.02, the plain head can take an
        # early gradient spike that leaves the box loss stuck at its initial value
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        # objects are 20-48 px: anchors of 24-38 px at stride 8, 48-76 at 16, 96-152 at 32
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=3, scales_per_octave=3,
                              ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                        target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                      ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))

max_iters = 1500
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75), int(max_iters * 0.9)], gamma=0.1),
]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'),
    # classes vs num_classes, undeclared category ids: errors instead of silently wrong labels
    dataset_check=dict(type='mmreweight.DatasetCheckHook'),
    # a NaN loss or parameter stops the run before a checkpoint saves it
    non_finite=dict(type='mmreweight.NonFiniteGuardHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
