"""Loss arguments are finite numbers in range (a NaN passes every comparison: FocalLoss(gamma=nan)
would compute the gamma=0 loss, gamma=inf a zero loss), and a loss that counts classes itself
must agree with its head."""
import math

import pytest

import mmreweight  # noqa: F401
from mmreweight.losses import CBFocalLoss, FocalLoss

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize('loss, kwargs, message', [
    (FocalLoss, dict(gamma=NAN), r'gamma must be a finite number >= 0, got nan'),
    (FocalLoss, dict(gamma=INF), r'gamma must be a finite number >= 0, got inf'),
    (FocalLoss, dict(gamma=-1.0), r'gamma must be a finite number >= 0, got -1.0'),
    (FocalLoss, dict(gamma='2'), r"gamma must be a finite number >= 0, got '2'"),
    (FocalLoss, dict(alpha=NAN), r'alpha must be in \[0, 1\] or None, got nan'),
    (FocalLoss, dict(alpha=1.5), r'alpha must be in \[0, 1\] or None, got 1.5'),
    (FocalLoss, dict(loss_weight=NAN), r'loss_weight must be a finite number >= 0, got nan'),
    (FocalLoss, dict(loss_weight=-INF), r'loss_weight must be a finite number >= 0, got -inf'),
    (CBFocalLoss, dict(num_classes=3, beta=NAN), r'beta must be in \[0, 1\), got nan'),
    (CBFocalLoss, dict(num_classes=3, gamma=INF), r'gamma must be a finite number >= 0'),
    (CBFocalLoss, dict(num_classes=3, loss_weight=INF), r'loss_weight must be a finite number'),
])
def test_non_finite_or_out_of_range_arguments_are_refused(loss, kwargs, message):
    with pytest.raises(ValueError, match=f'^{message}'):
        loss(**kwargs)


def test_valid_arguments_are_kept():
    loss = FocalLoss(gamma=0, alpha=None, loss_weight=0)
    assert (loss.gamma, loss.alpha, loss.loss_weight) == (0.0, None, 0.0)
    assert CBFocalLoss(num_classes=2, beta=0.0).beta == 0.0


@pytest.mark.parametrize('head', ['ReweightRetinaHead', 'LevelAwareRetinaHead',
                                  'JointLevelRetinaHead'])
def test_head_refuses_a_loss_with_another_num_classes(head):
    from mmreweight.registry import MODELS
    cfg = dict(type=head, num_classes=10, in_channels=8, feat_channels=8, stacked_convs=1,
               anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                     scales_per_octave=1, ratios=[1.0], strides=[8]),
               loss_cls=dict(type='mmreweight.CBFocalLoss', num_classes=9, use_sigmoid=True))
    with pytest.raises(ValueError, match=r'model.bbox_head.loss_cls \(CBFocalLoss\) has '
                       rf'num_classes=9 but model.bbox_head \({head}\) has num_classes=10: '
                       r'the loss and the head must count the same classes; set '
                       r'model.bbox_head.loss_cls.num_classes and model.bbox_head.num_classes'):
        MODELS.build(cfg)
    cfg['loss_cls']['num_classes'] = 10
    assert MODELS.build(cfg).loss_cls.num_classes == 10
