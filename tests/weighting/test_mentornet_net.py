"""MentorNet network: the one-step BiLSTM cell, fitting predefined curricula, DD learning, files."""
import math

import pytest
import torch

from mmreweight.weighting.base import AnchorLossContext
from mmreweight.weighting.mentornet import MentorNetWeighter
from mmreweight.weighting.mentornet.curricula import make_curriculum
from mmreweight.weighting.mentornet.dd import (dd_features, fit_data_driven, load_mentor,
                                               roc_auc, save_mentor)
from mmreweight.weighting.mentornet.net import (MentorNetwork, OneStepBiLSTMCell,
                                                fit_to_curriculum)

C = 3


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny networks: thread hand-offs cost more than the maths on 2 shared cores.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_one_step_cell_equals_torch_bilstm_cell_state():
    """c of nn.LSTM(2, 1, bidirectional) after one step from zero state = σ(a_i)·tanh(a_g)."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(2, 1, bidirectional=True)
    cell = OneStepBiLSTMCell(2)
    with torch.no_grad():  # nn.LSTM gate order is (i, f, g, o); both biases add
        for d, sfx in enumerate(['', '_reverse']):
            w = getattr(lstm, f'weight_ih_l0{sfx}')
            b = getattr(lstm, f'bias_ih_l0{sfx}') + getattr(lstm, f'bias_hh_l0{sfx}')
            cell.gates.weight[2 * d:2 * d + 2] = w[[0, 2]]
            cell.gates.bias[2 * d:2 * d + 2] = b[[0, 2]]
    x = torch.randn(17, 2)
    _, (_, c_n) = lstm(x.unsqueeze(0))  # a length-1 sequence of 17 examples
    assert torch.allclose(cell(x), c_n.permute(1, 0, 2).reshape(17, 2), atol=1e-6)


def test_network_shapes_and_clamped_epochs():
    net = MentorNetwork()
    feats = torch.tensor([[0.5, -0.1, 0, 0], [2.0, 1.0, 1, 99], [2.0, 1.0, 1, 250]])
    v = net.weights(feats)
    assert v.shape == (3,) and ((v > 0) & (v < 1)).all()
    assert v[1] == v[2]  # epochs beyond 99 are clamped to 99
    net.restrict_epochs(torch.tensor([30, 60, 30]))
    assert net.epoch_map[[0, 30, 45, 46, 99]].tolist() == [30, 30, 30, 60, 60]  # tie -> lower
    at = lambda e: net.weights(torch.tensor([[0.5, -0.1, 0, float(e)]]))  # noqa: E731
    assert at(10) == at(30) and at(50) == at(60) and at(30) != at(60)


def test_network_init_depends_on_seed_only():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a, b, c = MentorNetwork(seed=1), MentorNetwork(seed=1), MentorNetwork(seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.fc1.weight, c.fc1.weight)


@pytest.mark.parametrize('name, steps', [('self_paced', 500), ('hem', 600), ('pd', 3000)])
def test_fit_to_curriculum_accuracy(name, steps):
    net, metrics = fit_to_curriculum(make_curriculum(name), steps=steps, num_points=30_000)
    assert metrics['accuracy'] >= 0.95, metrics


def test_fit_to_wrong_targets_is_detected():
    """The accuracy measure can fail: a net fitted to self-paced scores badly against HEM."""
    from mmreweight.weighting.mentornet.net import curriculum_grid, evaluate_fit
    net, _ = fit_to_curriculum(make_curriculum('self_paced'), steps=500, num_points=30_000)
    feats, hem = curriculum_grid(make_curriculum('hem'), 10_000, torch.Generator().manual_seed(1))
    assert evaluate_fit(net, feats, hem)['accuracy'] < 0.8


def test_weighter_with_fitted_network_agrees_with_closed_form():
    net_w = MentorNetWeighter(curriculum='self_paced', burn_in=None, fit_network=True,
                              fit_steps=500)
    exact = MentorNetWeighter(curriculum='self_paced', burn_in=None)
    # losses well away from the percentile (|diff| >= 0.5), where a fitted net is unambiguous
    loss = torch.cat([torch.linspace(0, 1, 50), torch.linspace(3, 6, 50)])
    ctx = AnchorLossContext(loss=loss, logits=torch.zeros(100, C),
                            labels=torch.full((100,), C), label_weights=torch.ones(100),
                            num_classes=C, avg_factor=1.0, progress=0.5)
    exact.pct_ema.value.fill_(2.0), exact.pct_ema.initialised.fill_(True)
    net_w.pct_ema.load_state_dict(exact.pct_ema.state_dict())
    net_w.eval(), exact.eval()
    assert ((net_w(ctx) > 0.5) == (exact(ctx) > 0.5)).float().mean() >= 0.95


# ---------------------------------------------------------------------------- DD
def test_roc_auc_by_hand():
    # positives {0.35, 0.8} vs negatives {0.1, 0.4}: 3 of 4 pairs ordered -> 0.75
    assert roc_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == 0.75
    assert roc_auc(torch.tensor([0.5, 0.5]), torch.tensor([1, 0])) == 0.5  # a tie counts half
    assert roc_auc(torch.tensor([0.1, 0.9, 0.9]), torch.tensor([0, 1, 0])) == 0.75
    assert math.isnan(roc_auc(torch.tensor([0.1]), torch.tensor([1])))


def test_dd_features_diff_against_group_and_epoch_percentile():
    loss = torch.tensor([0., 1, 2, 3, 4, 10, 20, 5.0])
    is_pos = torch.tensor([0, 0, 0, 0, 0, 1, 1, 0]).bool()
    epoch = torch.tensor([3, 3, 3, 3, 3, 3, 3, 7])
    f = dd_features(loss, is_pos, epoch, percentile=0.5)
    # epoch 3 negatives 0..4 -> median 2; positives {10, 20} -> 15; epoch 7 negatives {5} -> 5
    assert f[:, 1].tolist() == [-2, -1, 0, 1, 2, -5, 5, 0]
    assert f[:, 2].tolist() == [0, 0, 0, 0, 0, 1, 1, 0] and f[:, 3].tolist() == [3] * 7 + [7]


def synthetic_dd(n_pos=3000, n_neg=3000, noise=0.3, seed=0):
    """Detection-scale losses: clean positives ~0.1, corrupted ~0.6, negatives ~0.01 (all clean)."""
    g = torch.Generator().manual_seed(seed)
    clean_pos = torch.rand(n_pos, generator=g) > noise
    pos_loss = torch.where(clean_pos, 0.1 + 0.05 * torch.randn(n_pos, generator=g),
                           0.6 + 0.15 * torch.randn(n_pos, generator=g)).abs()
    neg_loss = (0.01 * torch.randn(n_neg, generator=g)).abs()
    loss = torch.cat([pos_loss, neg_loss])
    is_pos = torch.cat([torch.ones(n_pos), torch.zeros(n_neg)]).bool()
    clean = torch.cat([clean_pos, torch.ones(n_neg, dtype=torch.bool)]).float()
    epoch = torch.where(torch.rand(len(loss), generator=g) > 0.5, 30, 60)
    return dd_features(loss, is_pos, epoch, 0.7), clean


def test_dd_learns_clean_vs_corrupted():
    feats, clean = synthetic_dd()
    net, m = fit_data_driven(feats, clean, steps=1500)
    assert m['auc_pos'] >= 0.95 and m['accuracy'] >= 0.95, m
    assert set(net.epoch_map.tolist()) == {30, 60}
    assert float(net.input_scale) == pytest.approx(1 / float(feats[:, 0].std()), rel=0.05)


def test_dd_cannot_learn_random_labels():
    feats, clean = synthetic_dd()
    shuffled = clean[torch.randperm(len(clean), generator=torch.Generator().manual_seed(3))]
    _, m = fit_data_driven(feats, shuffled, steps=1500)
    assert m['auc_pos'] < 0.6, m


def test_mentor_file_round_trip_and_weighter(tmp_path):
    feats, clean = synthetic_dd()
    net, m = fit_data_driven(feats, clean, steps=1500)
    path = str(tmp_path / 'mentor.pth')
    save_mentor(path, net, 'dd', dict(percentile=0.7, metrics=m))
    blob = torch.load(path, weights_only=True)  # plain containers only
    assert blob['curriculum'] == 'dd' and blob['meta']['percentile'] == 0.7
    loaded, curriculum, meta = load_mentor(path)
    assert torch.equal(loaded.weights(feats), net.weights(feats))

    w = MentorNetWeighter(mentor='dd', mentor_checkpoint=path, burn_in=None)
    n = 400
    g = torch.Generator().manual_seed(5)
    corrupted = torch.arange(n) < 100
    loss = torch.where(corrupted, torch.full((n,), 0.6), 0.1 + 0.02 * torch.randn(n, generator=g))
    labels = torch.randint(0, C, (n,), generator=g)
    ctx = AnchorLossContext(loss=loss, logits=torch.zeros(n, C), labels=labels,
                            label_weights=torch.ones(n), num_classes=C, avg_factor=float(n),
                            progress=0.45)
    out = w(ctx)
    assert float(out.mean()) == pytest.approx(1.0, rel=1e-5)
    assert out[corrupted].mean() < 0.5 * out[~corrupted].mean()

    # state_dict round trip restores the mentor's parameters (and the EMA) into another mentor
    other = str(tmp_path / 'other.pth')
    save_mentor(other, MentorNetwork(seed=7), 'dd', dict(percentile=0.7))
    w2 = MentorNetWeighter(curriculum='dd', mentor_checkpoint=other, burn_in=None)
    assert not torch.equal(w2.mentor_net.fc1.weight, w.mentor_net.fc1.weight)
    w2.load_state_dict(w.state_dict())
    for (k, a), (_, b) in zip(w.state_dict().items(), w2.state_dict().items()):
        assert torch.equal(a, b), k
    w.eval(), w2.eval()
    assert torch.equal(w(ctx), w2(ctx))


def test_mentor_file_checks(tmp_path):
    path = str(tmp_path / 'pd.pth')
    save_mentor(path, MentorNetwork(), 'self_paced')
    with pytest.raises(ValueError, match='self_paced'):
        MentorNetWeighter(curriculum='dd', mentor_checkpoint=path)
    torch.save({'state_dict': {}}, str(tmp_path / 'junk.pth'))
    with pytest.raises(ValueError, match='not a MentorNet file'):
        load_mentor(str(tmp_path / 'junk.pth'))
    # a network fitted offline to a predefined curriculum replaces its closed form
    w = MentorNetWeighter(curriculum='self_paced', mentor_checkpoint=path)
    assert w.mentor_net is not None
