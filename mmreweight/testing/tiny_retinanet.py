"""A tiny RetinaNet and synthetic batches, shared by the meta-reweighting tests and benchmarks."""
import copy
import logging
from typing import List, Optional, Tuple

import torch
from mmdet.structures import DetDataSample
from mmengine.logging import MMLogger
from mmengine.structures import InstanceData
from torch import Tensor


def tiny_retinanet_cfg(num_classes: int = 3, head_type: str = 'mmreweight.ReweightRetinaHead',
                       base_channels: int = 8, feat_channels: int = 16,
                       stacked_convs: int = 2, head_norm: Optional[str] = None,
                       loss_cls: Optional[dict] = None) -> dict:
    """RetinaNet with a narrow ResNet-18 (BN in train mode), 3-level FPN (strides 8-32)."""
    c = base_channels
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0., 0., 0.], std=[1., 1., 1.],
                               bgr_to_rgb=False, pad_size_divisor=32),
        backbone=dict(type='ResNet', depth=18, base_channels=c, stem_channels=c, num_stages=4,
                      out_indices=(1, 2, 3), frozen_stages=-1, norm_eval=False,
                      norm_cfg=dict(type='BN', requires_grad=True), style='pytorch'),
        neck=dict(type='FPN', in_channels=[2 * c, 4 * c, 8 * c], out_channels=feat_channels,
                  start_level=0, add_extra_convs=False, num_outs=3),
        bbox_head=dict(
            type=head_type, num_classes=num_classes, in_channels=feat_channels,
            stacked_convs=stacked_convs, feat_channels=feat_channels,
            norm_cfg=None if head_norm is None else dict(type=head_norm, num_groups=4)
            if head_norm == 'GN' else dict(type=head_norm),
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=1, ratios=[0.5, 1.0, 2.0],
                                  strides=[8, 16, 32]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                            target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=loss_cls or dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                                      loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                          ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.5), max_per_img=10))


def build_tiny_retinanet(dtype=torch.float32, seed: int = 0, **kwargs):
    """Build and initialise :func:`tiny_retinanet_cfg` (train mode); ``retina_cls`` is re-drawn
    larger than RetinaNet's prior init so that gradients are not degenerate in tests."""
    from mmengine.registry import DefaultScope

    from mmreweight.registry import MODELS
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmreweight'):
        model = MODELS.build(tiny_retinanet_cfg(**kwargs))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    with torch.no_grad():
        model.bbox_head.retina_cls.weight.normal_(0, 0.1)
        model.bbox_head.retina_cls.bias.normal_(-1.0, 0.5)
    return model.to(dtype).train()


def synthetic_batch(num_images: int = 2, size: int = 64, num_classes: int = 3,
                    boxes_per_image: int = 3, seed: int = 0, dtype=torch.float32,
                    noisy_fraction: float = 0.0) -> Tuple[Tensor, List[DetDataSample]]:
    """Random images with random boxes (already "preprocessed": a (B, 3, H, W) tensor), and data
    samples whose ``gt_instances`` carry ``bboxes``, ``labels`` and a ``noisy`` flag."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(num_images, 3, size, size, generator=g, dtype=torch.float64).to(dtype)
    samples = []
    for _ in range(num_images):
        wh = torch.rand(boxes_per_image, 2, generator=g) * size * 0.5 + size * 0.15
        xy = torch.rand(boxes_per_image, 2, generator=g) * (size - wh)
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), pad_shape=(size, size),
                                             ori_shape=(size, size), scale_factor=(1., 1.),
                                             batch_input_shape=(size, size)))
        inst = InstanceData()
        inst.bboxes = torch.cat([xy, xy + wh], 1)
        inst.labels = torch.randint(num_classes, (boxes_per_image, ), generator=g)
        inst.noisy = torch.rand(boxes_per_image, generator=g) < noisy_fraction
        sample.gt_instances = inst
        samples.append(sample)
    return inputs, samples


def clone_samples(samples: List[DetDataSample]) -> List[DetDataSample]:
    return copy.deepcopy(samples)


__all__ = ['tiny_retinanet_cfg', 'build_tiny_retinanet', 'synthetic_batch', 'clone_samples']
