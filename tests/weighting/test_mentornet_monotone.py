"""MentorNet's monotone envelope (``monotone=True``) vs values by hand and a brute-force minimum."""
import pytest
import torch

from mmreweight.weighting.mentornet import MentorNetWeighter
from mmreweight.weighting.mentornet.curricula import self_paced
from mmreweight.weighting.mentornet.inputs import mentor_features
from mmreweight.weighting.mentornet.monotone import monotone_envelope
from mmreweight.weighting.mentornet.net import MentorNetwork

C = 3  # foreground classes; label C = background


def v_shaped(feats):
    """A mentor that trusts high losses again: v(ℓ) = min(|ℓ − 1|, 1)."""
    return (feats[:, 0] - 1).abs().clamp(max=1)


def test_envelope_by_hand():
    loss = torch.tensor([0.25, 0.75, 1.2, 1.9, 2.0])
    is_pos = torch.ones(5, dtype=torch.bool)
    feats = mentor_features(loss, is_pos, torch.tensor([0.0, 0.5]), 50)
    v = v_shaped(feats)  # [0.75, 0.25, 0.2, 0.9, 1.0]
    # grid 0, 0.5, ..., 2.0: v = [1, 0.5, 0, 0.5, 1] -> running minimum [1, 0.5, 0, 0, 0]
    out = monotone_envelope(v_shaped, v, loss, is_pos, torch.tensor([0.0, 0.5]), 50, step=0.5)
    assert out.tolist() == pytest.approx([0.75, 0.25, 0.0, 0.0, 0.0])


def brute_force(mentor, loss, is_pos, thresholds, epoch, step):
    """min(v(ℓ), v(k·s) for every k·s ≤ ℓ), one anchor at a time."""
    out = []
    for ell, pos in zip(loss.tolist(), is_pos.tolist()):
        points = torch.tensor([k * step for k in range(int(ell // step) + 1)] + [ell])
        feats = mentor_features(points, torch.full_like(points, pos, dtype=torch.bool),
                                thresholds, epoch)
        out.append(float(mentor(feats).min()))
    return torch.tensor(out)


def test_network_mentor_matches_brute_force_per_group():
    net = MentorNetwork(seed=3)
    net.input_scale.fill_(4.0)  # a random network with visible wiggles over [0, 3]
    g = torch.Generator().manual_seed(0)
    loss = torch.rand(60, generator=g) * 3
    is_pos = torch.rand(60, generator=g) < 0.5
    thresholds, epoch, step = torch.tensor([0.3, 0.9]), 40, 0.05
    with torch.no_grad():
        v = net.weights(mentor_features(loss, is_pos, thresholds, epoch))
        out = monotone_envelope(net.weights, v, loss, is_pos, thresholds, epoch, step)
        ref = brute_force(net.weights, loss, is_pos, thresholds, epoch, step)
    assert torch.allclose(out, ref, atol=1e-6)
    assert bool((out <= v + 1e-7).all()) and bool((out < v - 1e-3).any())  # it did lower some


def test_an_anchors_weight_does_not_depend_on_the_rest_of_the_batch():
    """The grid is fixed multiples of the step: what makes the envelope rank-independent."""
    net = MentorNetwork(seed=5)
    net.input_scale.fill_(4.0)
    thresholds = torch.tensor([0.2, 0.6])
    loss = torch.tensor([0.4, 1.3, 2.2])
    is_pos = torch.tensor([True, True, False])

    def envelope(loss, is_pos):
        with torch.no_grad():
            v = net.weights(mentor_features(loss, is_pos, thresholds, 70))
            return monotone_envelope(net.weights, v, loss, is_pos, thresholds, 70, 0.01)

    alone = envelope(loss, is_pos)
    crowded = envelope(torch.cat([loss, torch.tensor([5.0, 0.1, 7.5])]),
                       torch.cat([is_pos, torch.tensor([True, False, False])]))
    assert torch.allclose(crowded[:3], alone, atol=1e-6)  # up to batched float rounding


def test_a_non_increasing_mentor_is_unchanged():
    loss = torch.tensor([0.1, 0.5, 0.9, 2.0, 0.3])
    is_pos = torch.tensor([True, True, False, True, False])
    thresholds = torch.tensor([0.4, 0.8])

    def mentor(f):
        return self_paced(f[:, 0], f[:, 1], f[:, 2], f[:, 3])

    v = mentor(mentor_features(loss, is_pos, thresholds, 30))
    assert torch.equal(monotone_envelope(mentor, v, loss, is_pos, thresholds, 30, 0.01), v)


def make_ctx(loss, labels, progress=0.5):
    loss = torch.as_tensor(loss, dtype=torch.float32)
    labels = torch.as_tensor(labels, dtype=torch.long)
    from mmreweight.weighting.base import AnchorLossContext
    return AnchorLossContext(loss=loss, logits=torch.zeros(len(loss), C), labels=labels,
                             label_weights=torch.ones_like(loss), num_classes=C,
                             avg_factor=float((labels < C).sum()), progress=progress)


def test_weighter_applies_the_envelope_before_normalising_by_hand():
    w = MentorNetWeighter(curriculum='self_paced', burn_in=None, normalise='foreground',
                          monotone=True, monotone_step=0.5)
    w.closed_form = lambda loss, diff, y, e: (loss - 1).abs().clamp(max=1)  # trusts high losses
    # positives' v = [0.75, 0.25, 0.2, 1.0] -> envelope [0.75, 0.25, 0, 0]; the negative keeps 1
    out = w(make_ctx([0.25, 0.75, 1.2, 2.0, 0.1], [0, 1, 2, 0, C]))
    assert out.tolist() == pytest.approx([3.0, 1.0, 0.0, 0.0, 1.0])  # mean one over 4 positives
    assert w.log_scalars()['mentornet_monotone_lowered'] == pytest.approx(0.5)
    plain = MentorNetWeighter(curriculum='self_paced', burn_in=None, normalise='foreground')
    plain.closed_form = w.closed_form
    assert plain(make_ctx([0.25, 0.75, 1.2, 2.0, 0.1], [0, 1, 2, 0, C])).tolist() == \
        pytest.approx([4 * 0.75 / 2.2, 4 * 0.25 / 2.2, 4 * 0.2 / 2.2, 4 / 2.2, 1.0])


@pytest.mark.parametrize('kwargs, match', [
    (dict(curriculum='hem', monotone=True), 'hem'),
    (dict(curriculum='focal', monotone=True), 'focal'),
    (dict(curriculum='pd', monotone=True, monotone_step=0.0), 'monotone_step'),
])
def test_monotone_option_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MentorNetWeighter(**kwargs)


def test_mentor_rise_by_hand():
    from mmreweight.weighting.mentornet.monotone import mentor_rise

    # positives of epoch 40 with losses up to 0.5 (lambda 0.2), a negative of epoch 70
    feats = torch.tensor([[0.1, -0.1, 1, 40], [0.5, 0.3, 1, 40], [2.0, 1.9, 0, 70]])
    # v = min(|l - 1|, 1) on 0..1.5 (3 x 0.5): falls to 0 at l = 1, rises to 0.5 at l = 1.5
    assert mentor_rise(v_shaped, feats) == pytest.approx(
        dict(rise_pos=0.5, rise_at_loss=1.5, rise_epoch=40))

    def falling(f):
        return torch.exp(-f[:, 0])

    assert mentor_rise(falling, feats)['rise_pos'] == 0.0


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_non_finite_loss_is_named(bad):
    loss = torch.tensor([0.2, bad])
    is_pos = torch.ones(2, dtype=torch.bool)
    with pytest.raises(ValueError, match='non-finite'):
        monotone_envelope(v_shaped, torch.ones(2), loss, is_pos, torch.tensor([0.0, 0.5]), 50,
                          0.1)
