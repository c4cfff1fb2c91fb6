"""GHM's warm-up and GHM-R's mu='auto' against references built from mmdet's losses and numpy:
the loss starts as focal / the unweighted authentic smooth L1, moves linearly to the paper's
loss over the warm-up, and mu is the mean of the calibration calls' quantiles of |d|, frozen,
checkpointed and restored."""
import uuid

import numpy as np
import pytest
import torch
from mmdet.models.losses import GHMC as MMDetGHMC
from mmdet.models.losses import GHMR as MMDetGHMR
from mmdet.models.losses import FocalLoss as MMDetFocalLoss
from mmengine.logging import MessageHub

from loss_testing import grads, make_cls_batch
from mmreweight.losses import GHMC, GHMR, frozen_loss_statistics
from mmreweight.losses.ghm import authentic_smooth_l1

TOL = dict(rtol=1e-5, atol=1e-6)
WARMUP = 100


@pytest.fixture
def at_iteration():
    """Sets the iteration a runner would report; a fresh message hub afterwards."""
    # a new name becomes the current instance, which is where the losses look
    hub = MessageHub.get_instance(f'test_ghm_warmup_{uuid.uuid4().hex}')

    def set_iteration(iteration):
        hub.update_info('iter', iteration)
    yield set_iteration
    MessageHub.get_instance(f'test_ghm_warmup_{uuid.uuid4().hex}')


def reg_batch(seed, n=60, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, 4, generator=g) * scale
    target = torch.randn(n, 4, generator=g) * scale
    weight = (torch.rand(n, 1, generator=g) < 0.5).float().expand(n, 4).contiguous()
    return pred, target, weight


@pytest.mark.parametrize('iteration', [0, 25, 60, WARMUP, 3 * WARMUP])
def test_ghmc_moves_from_focal_to_the_paper_loss(iteration, at_iteration):
    pred, labels, w = make_cls_batch(seed=3)
    w = (w > 0).float()  # mmdet's GHMC takes a 0/1 mask (real weights: test_ghm.py)
    at_iteration(iteration)
    ours = GHMC(bins=30, warmup_iters=WARMUP)
    v, g = grads(lambda x: ours(x, labels, w, avg_factor=17.0), pred)
    share = min(1.0, iteration / WARMUP)
    focal = MMDetFocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25)
    paper = MMDetGHMC(bins=30)
    v_ref, g_ref = grads(
        lambda x: share * paper(x, labels, (w > 0).float())
        + (1 - share) * focal(x, labels, w, avg_factor=17.0), pred)
    torch.testing.assert_close(v, v_ref, **TOL)
    torch.testing.assert_close(g, g_ref, **TOL)
    assert ours.last_share == share


@pytest.mark.parametrize('iteration', [0, 50, WARMUP])
def test_ghmr_moves_from_the_unweighted_loss_to_the_paper_loss(iteration, at_iteration):
    pred, target, w = reg_batch(seed=1)
    at_iteration(iteration)
    ours = GHMR(mu=0.02, warmup_iters=WARMUP)
    v, g = grads(lambda x: ours(x, target, w), pred)
    share = min(1.0, iteration / WARMUP)
    # the unweighted loss: authentic smooth L1 averaged over the valid elements
    plain = lambda x: (authentic_smooth_l1(x - target, 0.02) * w).sum() / (w > 0).sum()  # noqa
    paper = MMDetGHMR(mu=0.02)
    v_ref, g_ref = grads(lambda x: share * paper(x, target, w) + (1 - share) * plain(x), pred)
    torch.testing.assert_close(v, v_ref, **TOL)
    torch.testing.assert_close(g, g_ref, **TOL)


def test_no_runner_evaluation_and_paper_exact_use_the_paper_loss(at_iteration):
    pred, labels, w = make_cls_batch(seed=4)
    w = (w > 0).float()
    paper = MMDetGHMC(bins=10)(pred, labels, w)
    at_iteration(None)  # no runner: nothing to warm up
    torch.testing.assert_close(GHMC(bins=10)(pred, labels, w), paper, **TOL)
    at_iteration(0)
    torch.testing.assert_close(GHMC(bins=10).eval()(pred, labels, w), paper, **TOL)
    torch.testing.assert_close(GHMC(bins=10, paper_exact=True)(pred, labels, w), paper, **TOL)
    assert GHMC(bins=10)(pred, labels, w) != paper  # iteration 0 of the warm-up: focal
    exact = GHMR(paper_exact=True)
    assert exact.warmup_iters == 0 and exact.mu == GHMR.PAPER_MU and not exact.auto_mu
    assert GHMC(mmdet_compat=True).warmup_iters == 0


def median_of_valid(pred, target, w):
    return float(np.quantile((pred - target).abs()[w > 0].numpy(), 0.5))


def test_auto_mu_averages_the_calibration_calls_then_freezes(at_iteration):
    loss = GHMR(mu='auto', mu_calibration_iters=3, warmup_iters=0)
    batches = [reg_batch(seed=s, scale=0.1 * (s + 1)) for s in range(5)]
    medians = [median_of_valid(*b) for b in batches]
    for it, batch in enumerate(batches):
        at_iteration(it)
        value = loss(*batch)
        mu = np.mean(medians[:min(it + 1, 3)])
        assert loss.current_mu() == pytest.approx(mu, rel=1e-6)
        # the loss of this call is the paper's loss at that mu
        torch.testing.assert_close(value, MMDetGHMR(mu=float(mu))(*batch), **TOL)
    assert int(loss.mu_calls) == 3


def test_auto_mu_with_momentum_follows_the_residuals_after_the_calibration(at_iteration):
    loss = GHMR(mu='auto', mu_calibration_iters=2, mu_momentum=0.9, warmup_iters=0)
    batches = [reg_batch(seed=s, scale=2.0 / (s + 1)) for s in range(6)]  # a sharpening detector
    medians = [median_of_valid(*b) for b in batches]
    mu = None
    for it, batch in enumerate(batches):
        at_iteration(it)
        value = loss(*batch)
        mu = np.mean(medians[:it + 1]) if it < 2 else 0.9 * mu + 0.1 * medians[it]
        assert loss.current_mu() == pytest.approx(mu, rel=1e-5)
        torch.testing.assert_close(value, MMDetGHMR(mu=float(mu))(*batch), **TOL)
    assert loss.current_mu() < 0.8 * np.mean(medians[:2])  # frozen, it would have stayed there
    # evaluation and look-ahead calls use it and do not move it
    with frozen_loss_statistics(loss):
        loss(*reg_batch(seed=7, scale=9.0))
    loss.eval()
    loss(*reg_batch(seed=8, scale=9.0))
    assert loss.current_mu() == pytest.approx(mu, rel=1e-5) and int(loss.mu_calls) == 6


def test_auto_mu_with_momentum_resumes_exactly(at_iteration):
    def run(loss, its):
        out = []
        for it in its:
            at_iteration(it)
            out.append(loss(*reg_batch(seed=it, scale=1.0 / (it + 1))))
        return out

    straight = GHMR(mu='auto', mu_calibration_iters=1, mu_momentum=0.8, momentum=0.7)
    expected = run(straight, range(4))
    first = GHMR(mu='auto', mu_calibration_iters=1, mu_momentum=0.8, momentum=0.7)
    run(first, range(2))
    resumed = GHMR(mu='auto', mu_calibration_iters=1, mu_momentum=0.8, momentum=0.7)
    resumed.load_state_dict(first.state_dict())
    for a, b in zip(run(resumed, range(2, 4)), expected[2:]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_auto_mu_is_checkpointed_and_restored(at_iteration):
    at_iteration(0)
    trained = GHMR(mu='auto', mu_calibration_iters=1, warmup_iters=0, momentum=0.7)
    trained(*reg_batch(seed=0))
    state = trained.state_dict()
    assert {'mu_value', 'mu_calls'} <= set(state)
    at_iteration(5)  # a resumed run, past the calibration
    resumed = GHMR(mu='auto', mu_calibration_iters=1, warmup_iters=0, momentum=0.7)
    resumed.load_state_dict(state)
    batch = reg_batch(seed=9, scale=2.0)  # another scale: a recalibration would change mu
    torch.testing.assert_close(resumed(*batch), trained(*batch), rtol=0, atol=0)
    assert resumed.current_mu() == trained.current_mu() == pytest.approx(
        median_of_valid(*reg_batch(seed=0)), rel=1e-6)


def test_auto_mu_is_not_moved_by_evaluation_or_look_ahead(at_iteration):
    at_iteration(0)
    loss = GHMR(mu='auto', mu_calibration_iters=10, warmup_iters=0)
    loss(*reg_batch(seed=0))
    mu = loss.current_mu()
    with frozen_loss_statistics(loss):
        loss(*reg_batch(seed=1, scale=3.0))
    loss.eval()
    loss(*reg_batch(seed=2, scale=3.0))
    assert loss.current_mu() == mu and int(loss.mu_calls) == 1
    # before any calibration an evaluation call uses its own quantile and stores nothing
    fresh = GHMR(mu='auto').eval()
    batch = reg_batch(seed=3)
    torch.testing.assert_close(fresh(*batch), MMDetGHMR(mu=median_of_valid(*batch))(*batch),
                               **TOL)
    assert fresh.current_mu() is None


@pytest.mark.parametrize('kwargs,match', [
    (dict(mu=float('nan')), 'mu must be a finite number'),
    (dict(mu=float('inf')), 'mu must be a finite number'),
    (dict(mu='median'), 'mu must be a finite number'),
    (dict(mu_quantile=1.5), 'mu_quantile'),
    (dict(mu_momentum=1.0), 'mu_momentum'),
    (dict(mu_momentum='fast'), 'mu_momentum'),
    (dict(mu=0.02, mu_momentum=0.9), "mu_momentum=0.9 moves an 'auto' mu"),
    (dict(warmup_iters=-1), 'warmup_iters'),
    (dict(warmup_iters=2.5), 'warmup_iters'),
    (dict(momentum=float('nan')), 'momentum'),
])
def test_bad_ghmr_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GHMR(**kwargs)


@pytest.mark.parametrize('kwargs,match', [(dict(focal_gamma=-1.0), 'gamma'),
                                          (dict(focal_alpha=2.0), 'alpha'),
                                          (dict(warmup_iters=-5), 'warmup_iters')])
def test_bad_ghmc_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GHMC(**kwargs)
