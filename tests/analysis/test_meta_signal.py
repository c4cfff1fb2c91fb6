"""mean_step_effect: what one step against the batches' hypergradients does to their weights."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from mmreweight.models.reweight_retina_head import CLEAN_POSITIVE, NOISY_POSITIVE
from mmreweight.analysis.meta_signal import mean_step_effect
from mmreweight.weighting.mwnet import VNet


def _batches(k=4, n=40, seed=0):
    """Losses in [0, 3]; the anchors with the highest losses are the noisy ones."""
    rng = np.random.default_rng(seed)
    losses = [rng.uniform(0, 3, n) for _ in range(k)]
    flags = [np.where(loss > 2, NOISY_POSITIVE, CLEAN_POSITIVE) for loss in losses]
    return losses, flags


def _weights(vnet, flat, loss):
    """Mean-one weights of ``loss`` under the VNet with flattened parameters ``flat``."""
    shapes = [p.shape for p in vnet.parameters()]
    chunks = torch.split(flat, [int(np.prod(s)) for s in shapes])
    state = {k: c.view(s) for k, c, s in zip(dict(vnet.named_parameters()), chunks, shapes)}
    v = torch.func.functional_call(vnet, state, (torch.as_tensor(loss, dtype=torch.float64),))
    return v / v.mean()


def _hypergrads(vnet, losses, coef_of_loss):
    """g_k = d/dphi sum_a c_a w_a(phi), the form of MW-Net's hypergradient, with c = f(loss)."""
    flat = torch.cat([p.detach().double().flatten() for p in vnet.parameters()])
    grads = []
    for loss in losses:
        phi = flat.clone().requires_grad_(True)
        c = torch.as_tensor(coef_of_loss(loss), dtype=torch.float64)
        grads.append(torch.autograd.grad((c * _weights(vnet, phi, loss)).sum(), phi)[0])
    return torch.stack(grads), flat


@pytest.mark.parametrize('sign', [1.0, -1.0])
def test_the_step_follows_the_coefficients_sign(sign):
    """Coefficients falling with the loss (sign -1: raising high losses' weights lowers the clean
    loss) make descent up-weight the high losses, and with them the noisy anchors."""
    torch.manual_seed(0)
    vnet = VNet(100).double()
    losses, flags = _batches()
    g, _ = _hypergrads(vnet, losses, lambda loss: sign * loss)
    for name, effect in mean_step_effect(vnet, g, losses, flags).items():
        assert np.sign(effect['spearman_dw_loss']) == -sign, name
        assert np.sign(effect['dw_noisy_minus_clean']) == -sign, name
        assert effect['batches_dw_loss_above_0'] == (4 if sign < 0 else 0), name


def test_the_step_matches_a_first_order_reference():
    """dw = step * J d / |d| with J the autograd Jacobian of the mean-one weights."""
    torch.manual_seed(1)
    vnet = VNet(100).double()
    losses, flags = _batches(k=3, seed=1)
    g, flat = _hypergrads(vnet, losses, lambda loss: np.sin(3 * loss))
    step = 1e-5
    out = mean_step_effect(vnet, g, losses, flags, step=step)
    rms = g.pow(2).mean(0).sqrt()
    adam = torch.where(rms > 0, -g.mean(0) / rms, torch.zeros_like(rms))  # dead ReLUs: no step
    for name, d in (('mean', -g.mean(0)), ('adam', adam)):
        rho, gap = [], []
        for loss, flag in zip(losses, flags):
            jac = torch.autograd.functional.jacobian(lambda phi: _weights(vnet, phi, loss), flat)
            dw = (step * jac @ (d / d.norm())).numpy()
            rho.append(spearmanr(dw, loss)[0])
            gap.append(dw[flag == NOISY_POSITIVE].mean() - dw[flag == CLEAN_POSITIVE].mean())
        assert out[name]['spearman_dw_loss'] == pytest.approx(np.mean(rho), abs=1e-3), name
        assert out[name]['dw_noisy_minus_clean'] == pytest.approx(np.mean(gap), rel=1e-3), name


def test_the_vnet_is_left_as_it_was():
    torch.manual_seed(2)
    vnet = VNet(8)
    state = {k: v.clone() for k, v in vnet.state_dict().items()}
    losses, flags = _batches(k=2)
    mean_step_effect(vnet, torch.randn(2, sum(p.numel() for p in vnet.parameters())), losses,
                     flags)
    assert all(torch.equal(v, vnet.state_dict()[k]) for k, v in state.items())


def test_no_hypergradient_no_step():
    vnet = VNet(8)
    losses, flags = _batches(k=2)
    out = mean_step_effect(vnet, torch.zeros(2, sum(p.numel() for p in vnet.parameters())),
                           losses, flags)
    assert out['mean'] == dict(spearman_dw_loss=None, batches_dw_loss_above_0=0,
                               dw_noisy_minus_clean=None)
