"""FocalLoss against mmdet's FocalLoss (its pure-PyTorch path, for (N, C) and dense (B, C, *)
input), torchvision's sigmoid_focal_loss and the paper's formula evaluated by hand."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.losses import FocalLoss as MMDetFocalLoss
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss

from mmreweight.losses import FocalLoss, sigmoid_focal_loss
from mmreweight.testing.devices import cpu_and_cuda
from loss_testing import grads, make_cls_batch

# "within 1e-6": absolute for small values, relative for values above 1 (fp32 spacing at 8 is 1e-6)
TOL = dict(rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
@pytest.mark.parametrize('weight_kind', [None, 'anchor', 'element', 'flat'])
def test_matches_mmdet(reduction, weight_kind):
    logits, labels, w = make_cls_batch(seed=1)
    n, c = logits.shape
    weight = {None: None, 'anchor': w, 'element': w[:, None].expand(n, c).contiguous(),
              'flat': w.repeat_interleave(c)}[weight_kind]
    avg_factor = None if reduction == 'sum' else 17.0
    kwargs = dict(weight=weight, avg_factor=avg_factor, reduction_override=reduction)
    ours = FocalLoss(gamma=2.0, alpha=0.25, loss_weight=1.5)
    ref = MMDetFocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.5)
    v, g = grads(ours, logits, labels, **kwargs)
    v_ref, g_ref = grads(ref, logits, labels, **kwargs)
    torch.testing.assert_close(v, v_ref, **TOL)
    torch.testing.assert_close(g, g_ref, **TOL)


def test_matches_mmdet_one_hot_targets():
    logits, labels, w = make_cls_batch(seed=2)
    one_hot = F.one_hot(labels, logits.shape[1] + 1)[:, :-1]
    for target in (one_hot, one_hot.float(), one_hot.bool()):
        v, g = grads(FocalLoss(), logits, target, w, avg_factor=5)
        v_ref, g_ref = grads(MMDetFocalLoss(), logits, one_hot, w, avg_factor=5)
        torch.testing.assert_close(v, v_ref, **TOL)
        torch.testing.assert_close(g, g_ref, **TOL)


@pytest.mark.parametrize('gamma', [0.0, 0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize('alpha', [None, 0.25, 0.9])
@pytest.mark.parametrize('soft', [False, True])
def test_matches_torchvision(gamma, alpha, soft):
    logits, labels, _ = make_cls_batch(seed=3)
    targets = F.one_hot(labels, logits.shape[1] + 1)[:, :-1].float()
    if soft:
        targets = torch.rand_like(targets)
    ours_t = targets if soft else targets.bool()
    v, g = grads(sigmoid_focal_loss, logits, ours_t, alpha=alpha, gamma=gamma)
    v_ref, g_ref = grads(tv_sigmoid_focal_loss, logits, targets,
                         alpha=-1 if alpha is None else alpha, gamma=gamma)
    torch.testing.assert_close(v, v_ref, **TOL)
    torch.testing.assert_close(g, g_ref, **TOL)


def test_value_by_hand():
    # FL = -alpha_t (1 - p_t)^gamma log p_t for one positive and one negative logit
    x_pos, x_neg, alpha, gamma = 0.7, -1.3, 0.25, 2.0
    p_pos, p_neg = 1 / (1 + math.exp(-x_pos)), 1 / (1 + math.exp(-x_neg))
    fl_pos = -alpha * (1 - p_pos)**gamma * math.log(p_pos)
    fl_neg = -(1 - alpha) * p_neg**gamma * math.log(1 - p_neg)
    logits = torch.tensor([[x_pos, x_neg]], dtype=torch.float64)
    loss = FocalLoss(alpha=alpha, gamma=gamma, reduction='none')(logits, torch.tensor([0]))
    assert loss[0, 0].item() == pytest.approx(fl_pos, rel=1e-12)
    assert loss[0, 1].item() == pytest.approx(fl_neg, rel=1e-12)
    # mean over all elements, or sum / avg_factor
    mean = FocalLoss(alpha=alpha, gamma=gamma)(logits, torch.tensor([0]), avg_factor=2.0)
    assert mean.item() == pytest.approx((fl_pos + fl_neg) / 2, rel=1e-6)


@pytest.mark.parametrize('gamma', [2.0, 0.5])
@pytest.mark.parametrize('soft', [False, True])
def test_gradgradcheck(gamma, soft):
    logits, labels, w = make_cls_batch(n=12, c=3, seed=4, dtype=torch.float64)
    target = torch.rand(12, 3, dtype=torch.float64) if soft else labels
    loss = FocalLoss(gamma=gamma)
    x = logits.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(
        lambda x: loss(x, target, w, avg_factor=3.0, reduction_override='none'), (x, ))
    assert loss.twice_differentiable


def test_saturated_logits_small_gamma_have_finite_gradients():
    # pow(s, 0.5) has an infinite derivative at s = 0, which a naive formula turns into NaN
    logits = torch.tensor([[200.0, -200.0], [-200.0, 200.0]], requires_grad=True)
    loss = FocalLoss(gamma=0.5)(logits, torch.tensor([0, 2]))
    (g, ) = torch.autograd.grad(loss, logits, create_graph=True)
    (gg, ) = torch.autograd.grad(g.sum(), logits)
    assert torch.isfinite(loss) and torch.isfinite(g).all() and torch.isfinite(gg).all()


def dense_batch(shape=(3, 5, 40, 40), dtype=torch.float32, device='cpu', seed=5):
    """mmdet's FocalLoss test shape: (B, C, W, H) logits, (B, W, H) labels and their one-hot
    (B, C, W, H) form (label C = background), (B, W, H) weights."""
    g = torch.Generator().manual_seed(seed)
    b, c, w, h = shape
    logits = (torch.randn(shape, generator=g) * 3).to(dtype)
    labels = torch.randint(0, c + 1, (b, w, h), generator=g)
    one_hot = F.one_hot(labels, c + 1)[..., :c].permute(0, 3, 1, 2)
    weight = (torch.rand((b, w, h), generator=g) + 0.5).to(dtype)
    return [t.to(device) for t in (logits, labels, one_hot, weight)]


@pytest.mark.parametrize('device', cpu_and_cuda())
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
@pytest.mark.parametrize('weighted', [False, True])
def test_dense_input_matches_mmdet(device, dtype, reduction, weighted):
    logits, labels, one_hot, w = dense_batch(dtype=dtype, device=device)
    # mmdet takes a per-element weight shaped like pred for dense input
    w_full = w[:, None].expand_as(logits).contiguous() if weighted else None
    avg_factor = None if reduction == 'sum' else 37.0
    kwargs = dict(avg_factor=avg_factor, reduction_override=reduction)
    ref = MMDetFocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.5)
    v_ref, g_ref = grads(ref, logits, one_hot, w_full, **kwargs)
    ours = FocalLoss(gamma=2.0, alpha=0.25, loss_weight=1.5)
    cases = [(one_hot, w_full), (one_hot.bool(), w_full), (labels, w_full)]
    if weighted:
        cases += [(one_hot, w), (labels, w)]  # a (B, W, H) weight: one per location
    for target, weight in cases:
        v, g = grads(ours, logits, target, weight, **kwargs)
        assert v.shape == v_ref.shape  # 'none' keeps (B, C, W, H)
        torch.testing.assert_close(v, v_ref, **TOL)
        torch.testing.assert_close(g, g_ref, **TOL)


def test_dense_input_shape_errors_name_the_argument():
    logits, labels, one_hot, w = dense_batch(shape=(2, 3, 4, 5))
    loss = FocalLoss()
    with pytest.raises(ValueError, match='target'):
        loss(logits, labels[:, :2])
    with pytest.raises(ValueError, match='target'):
        loss(logits, one_hot[:, :2])
    with pytest.raises(ValueError, match='weight'):
        loss(logits, labels, w[:1])
