"""Our losses swapped into RetinaNet, ATSS and FCOS built from mmdet's own configs by a one-line
override, each trained for one step on a fake batch; and, inside a detector, our focal / GHM
losses give mmdet's loss values."""
import numpy as np
import pytest
import torch
from mmengine.hub import get_config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope

import mmreweight  # noqa: F401  (registers the losses and heads)
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmreweight.losses import CBFocalLoss, FocalLoss, GHMC, GHMR

CONFIGS = dict(retinanet='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
               atss='mmdet::atss/atss_r50_fpn_1x_coco.py',
               fcos='mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py')
COUNTS = [int(c) for c in np.random.default_rng(0).integers(1, 5000, 80)]
LOSSES = dict(
    focal=dict(type='mmreweight.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25),
    ghmc=dict(type='mmreweight.GHMC', use_sigmoid=True, bins=30, momentum=0.75),
    cb_focal=dict(type='mmreweight.CBFocalLoss', use_sigmoid=True, num_classes=80,
                  class_counts=COUNTS, beta=0.999),
    cb_softmax=dict(type='mmreweight.CBFocalLoss', use_sigmoid=False, num_classes=80,
                    class_counts=COUNTS, loss_type='softmax'),
)


def tiny_config(detector):
    """mmdet's config (read from the installed package) shrunk for a CPU test: ResNet-18
    backbone with nothing to download, 64-channel FPN and head."""
    cfg = get_config(CONFIGS[detector])
    cfg.model.backbone.depth = 18
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    cfg.model.neck.out_channels = 64
    cfg.model.bbox_head.in_channels = 64
    cfg.model.bbox_head.feat_channels = 64
    return cfg


def build_detector(cfg):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):  # as a plain mmdet config runs
        model = MODELS.build(cfg.model)
    # no init_weights(): PyTorch's default init suffices for one step, and mmengine's
    # init logging alone (a mean over every parameter) doubles the test's time
    return model


def fake_batch():
    np.random.seed(0)
    torch.manual_seed(0)
    return demo_mm_inputs(batch_size=2, image_shapes=(3, 64, 64), num_items=[3, 2],
                          num_classes=80)


def train_one_step(model):
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    cls_weight = model.bbox_head.conv_cls.weight if hasattr(model.bbox_head, 'conv_cls') \
        else model.bbox_head.atss_cls.weight if hasattr(model.bbox_head, 'atss_cls') \
        else model.bbox_head.retina_cls.weight
    before = cls_weight.detach().clone()
    model.train()
    log_vars = model.train_step(fake_batch(), optim)
    assert np.isfinite(log_vars['loss'].item() if torch.is_tensor(log_vars['loss'])
                       else log_vars['loss'])
    assert np.isfinite(float(log_vars['loss_cls']))
    assert not torch.equal(cls_weight.detach(), before)  # the classifier learnt something
    return log_vars


CASES = [(d, loss) for d in CONFIGS for loss in ('focal', 'ghmc', 'cb_focal')] + \
    [('retinanet', 'cb_softmax')]


@pytest.mark.parametrize('detector,loss', CASES)
def test_one_training_step_with_swapped_cls_loss(detector, loss):
    cfg = tiny_config(detector)
    cfg.model.bbox_head.loss_cls = LOSSES[loss]  # the one-line swap
    model = build_detector(cfg)
    expected = dict(focal=FocalLoss, ghmc=GHMC, cb_focal=CBFocalLoss, cb_softmax=CBFocalLoss)
    assert type(model.bbox_head.loss_cls) is expected[loss]
    train_one_step(model)


@pytest.mark.parametrize('detector', ['retinanet', 'atss'])
def test_level_aware_head_keeps_one_ghm_average_per_level(detector):
    cfg = tiny_config(detector)
    head = dict(retinanet='RetinaHead', atss='ATSSHead')[detector]
    cfg.model.bbox_head.type = 'mmreweight.LevelAware' + head
    cfg.model.bbox_head.loss_cls = LOSSES['ghmc']
    if detector == 'retinanet':  # mmdet's GHM config: GHM-R for the boxes too
        cfg.model.bbox_head.loss_bbox = dict(type='mmreweight.GHMR', mu=0.02, bins=10,
                                             momentum=0.7, loss_weight=10.0)
    model = build_detector(cfg)
    train_one_step(model)
    acc = model.bbox_head.loss_cls.acc_sum
    assert acc.shape == (5, 30) and (acc.sum(1) > 0).all()  # all five levels counted
    # each level's row holds its own anchors: sizes fall with the level (8x8 ... 1x1 at 64 px)
    assert (acc.sum(1)[:-1] >= acc.sum(1)[1:]).all() and acc.sum(1)[0] > acc.sum(1)[3]
    if detector == 'retinanet':
        assert (model.bbox_head.loss_bbox.acc_sum.sum(1) > 0).any()
        assert model.bbox_head.loss_cls._fpn_level is None  # the count ends with the call


def test_plain_head_shares_row_0_like_mmdet():
    cfg = tiny_config('retinanet')
    cfg.model.bbox_head.loss_cls = LOSSES['ghmc']
    model = build_detector(cfg)
    train_one_step(model)
    acc = model.bbox_head.loss_cls.acc_sum
    assert acc[0].sum() > 0 and not acc[1:].any()


@pytest.mark.parametrize('ours,theirs', [
    (LOSSES['focal'], dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25)),
    (LOSSES['ghmc'], dict(type='GHMC', use_sigmoid=True, bins=30, momentum=0.75)),
])
def test_detector_loss_equals_mmdet(ours, theirs):
    losses = {}
    for name, loss_cfg in (('ours', ours), ('mmdet', theirs)):
        cfg = tiny_config('retinanet')
        cfg.model.bbox_head.loss_cls = loss_cfg
        model = build_detector(cfg)
        data = model.data_preprocessor(fake_batch(), True)
        losses[name] = model.loss(data['inputs'], data['data_samples'])
    for key in ('loss_cls', 'loss_bbox'):
        torch.testing.assert_close(torch.stack(losses['ours'][key]),
                                   torch.stack(losses['mmdet'][key]), rtol=1e-5, atol=1e-6)


def test_ghmr_in_a_detector_equals_mmdet():
    losses = {}
    for name, loss_type in (('ours', 'mmreweight.GHMR'), ('mmdet', 'GHMR')):
        cfg = tiny_config('retinanet')
        cfg.model.bbox_head.loss_bbox = dict(type=loss_type, mu=0.02, bins=10, momentum=0.7,
                                             loss_weight=10.0)
        model = build_detector(cfg)
        assert (type(model.bbox_head.loss_bbox) is GHMR) == (name == 'ours')
        data = model.data_preprocessor(fake_batch(), True)
        losses[name] = model.loss(data['inputs'], data['data_samples'])
    torch.testing.assert_close(torch.stack(losses['ours']['loss_bbox']),
                               torch.stack(losses['mmdet']['loss_bbox']), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('detector', ['retinanet', 'atss'])
def test_joint_level_head_gives_the_stock_head_losses_summed_over_levels(detector):
    """Losses summed over anchors and divided by the positives (focal, L1, GIoU, centre-ness):
    one call over all levels is the stock head's per-level losses summed."""
    head = dict(retinanet='RetinaHead', atss='ATSSHead')[detector]
    losses = {}
    for name in ('stock', 'joint'):
        cfg = tiny_config(detector)
        if name == 'joint':
            cfg.model.bbox_head.type = 'mmreweight.JointLevel' + head
        model = build_detector(cfg)
        assert type(model.bbox_head).__name__ == ('JointLevel' + head if name == 'joint' else head)
        data = model.data_preprocessor(fake_batch(), True)
        losses[name] = model.loss(data['inputs'], data['data_samples'])
    assert set(losses['joint']) == set(losses['stock'])
    for key, stock in losses['stock'].items():
        torch.testing.assert_close(losses['joint'][key], sum(stock), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('detector', ['retinanet', 'atss'])
def test_joint_level_head_counts_every_level_in_one_ghm_histogram(detector):
    cfg = tiny_config(detector)
    head = dict(retinanet='RetinaHead', atss='ATSSHead')[detector]
    cfg.model.bbox_head.type = 'mmreweight.JointLevel' + head
    cfg.model.bbox_head.loss_cls = dict(LOSSES['ghmc'], num_levels=1)
    model = build_detector(cfg)
    train_one_step(model)
    counts = model.bbox_head.loss_cls.acc_sum
    # one histogram for the anchors of every level (8x8, 4x4, 2x2, 1x1, 1x1 locations at 64 px;
    # RetinaNet ignores some, of IoU between its thresholds): more than the first level holds
    elements = (1 - 0.75) * model.bbox_head.num_base_priors * 2 * 80  # momentum, images, classes
    assert counts.shape == (1, 30)
    assert 64 * elements < counts.sum() <= (64 + 16 + 4 + 1 + 1) * elements
