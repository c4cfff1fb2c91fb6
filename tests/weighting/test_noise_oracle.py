"""NoiseOracleWeighter against weights worked out by hand from the noise flags."""
import pytest
import torch

from mmreweight.registry import MODELS
from mmreweight.weighting.base import (CLEAN_POSITIVE, NOISY_POSITIVE, NOT_POSITIVE,
                                       UNKNOWN_POSITIVE, AnchorLossContext)
from mmreweight.weighting.noise_oracle import NoiseOracleWeighter

C = 3  # foreground classes; label C = background
N, P, Q = NOT_POSITIVE, CLEAN_POSITIVE, NOISY_POSITIVE


def make_ctx(labels, flags, label_weights=None, with_flags=True):
    labels = torch.tensor(labels)
    lw = torch.ones(len(labels)) if label_weights is None else torch.tensor(label_weights)
    extras = dict(gt_noisy=torch.tensor(flags)) if with_flags else {}
    return AnchorLossContext(loss=torch.rand(len(labels)), logits=torch.zeros(len(labels), C),
                             labels=labels, label_weights=lw, num_classes=C,
                             avg_factor=float((labels < C).sum()), extras=extras)


def test_weights_by_hand():
    # anchors: bg, clean fg, noisy fg, clean fg, ignored bg, noisy fg, bg
    ctx = make_ctx([C, 0, 1, 2, C, 0, C], [N, P, Q, P, N, Q, N],
                   [1., 1., 1., 1., 0., 1., 1.])
    w = NoiseOracleWeighter()(ctx)
    # 4 valid foreground anchors, 2 of them clean: the clean ones get 4 / 2 = 2;
    # background keeps 1, the ignored anchor 0
    assert w.tolist() == [1., 2., 0., 2., 0., 0., 1.]
    assert w[ctx.valid & ctx.foreground].mean() == 1.0


def test_every_positive_noisy_leaves_the_background():
    w = NoiseOracleWeighter()(make_ctx([C, 0, 1], [N, Q, Q]))
    assert w.tolist() == [1., 0., 0.]


def test_without_noise_it_is_the_unweighted_loss():
    w = NoiseOracleWeighter()(make_ctx([C, 0, 1, C], [N, P, P, N], [1., 1., 1., 0.]))
    assert w.tolist() == [1., 1., 1., 0.]


def test_logs_how_many_anchors_it_dropped():
    weighter = NoiseOracleWeighter()
    weighter(make_ctx([C, 0, 1, 2], [N, Q, Q, P]))
    assert weighter.log_scalars() == dict(noise_oracle_noisy_anchors=2.0)


@pytest.mark.parametrize('flags, with_flags, match', [
    ([N, UNKNOWN_POSITIVE], True, 'positive anchors without one'),
    ([N, P], False, 'passed no gt_noisy'),
])
def test_missing_noise_flags_are_a_clear_error(flags, with_flags, match):
    with pytest.raises(ValueError, match=f'LoadCleanLabels.*{match}'):
        NoiseOracleWeighter()(make_ctx([C, 0], flags, with_flags=with_flags))


def test_registered():
    assert isinstance(MODELS.build(dict(type='mmreweight.NoiseOracleWeighter')),
                      NoiseOracleWeighter)


def test_burn_in_keeps_the_unweighted_loss_up_to_its_epoch():
    weighter = NoiseOracleWeighter(burn_in=0.18)
    ctx = make_ctx([C, 0, 1, 2, C], [N, P, Q, P, N], [1., 1., 1., 1., 0.])
    for progress, expected in ((0.0, [1., 1., 1., 1., 0.]),
                               (0.189, [1., 1., 1., 1., 0.]),  # MentorNet epoch 18: burn-in
                               (0.19, [1., 1.5, 0., 1.5, 0.]),  # epoch 19: the oracle's weights
                               (1.0, [1., 1.5, 0., 1.5, 0.])):
        ctx.progress = progress
        assert weighter(ctx).tolist() == expected, progress
    with pytest.raises(ValueError, match='burn_in'):
        NoiseOracleWeighter(burn_in=1.5)


def test_noisy_weight_by_hand():
    weighter = NoiseOracleWeighter(noisy_weight=0.25)
    w = weighter(make_ctx([C, 0, 1, 2, 0], [N, P, Q, P, Q]))
    # foreground v = [1, 0.25, 1, 0.25], sum 2.5 over 4 anchors: scaled by 4 / 2.5 = 1.6
    assert w.tolist() == pytest.approx([1.0, 1.6, 0.4, 1.6, 0.4])
    assert weighter.log_scalars() == dict(noise_oracle_noisy_anchors=2.0)
    with pytest.raises(ValueError, match='noisy_weight'):
        NoiseOracleWeighter(noisy_weight=-0.1)
