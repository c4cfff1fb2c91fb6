r"""Where GHM-R puts a detector's box-regression gradient, against the L1 loss it replaces.

GHM-R (Li et al. 2019) bins each box-delta element by :math:`g = |d| / \sqrt{d^2 + \mu^2}` and
divides its loss by its bin's population, assuming the crowded top bin holds outliers. Whether
that holds depends on how the deltas compare with :math:`\mu`: :func:`ghmr_profile` measures, per
bin, the share of the elements and the mean size of GHM-R's gradient on an element relative to
the L1 loss of mmdet's RetinaNet (``sum |d| / #positives``, loss weight 1), so a ratio below 1
means GHM-R pushes those coordinates less than the plain detector would.
"""
from typing import Any, Dict, Optional

import torch
from torch import Tensor

from mmreweight.losses.ghm import GHMR, asl1_gradient_norm
from mmreweight.losses.gradient_density import ghm_edges, gradient_density


def ghmr_profile(pred: Tensor, target: Tensor, weight: Tensor, avg_factor: float,
                 mu: float = 0.02, bins: int = 10, loss_weight: float = 10.0) -> Dict[str, Any]:
    """GHM-R's bins and gradient on one batch of box deltas (no moving average).

    Args:
        pred, target: ``(N, 4)`` box deltas as the head predicts and encodes them.
        weight: ``(N, 4)`` box weights, 1 for the coordinates of positive anchors, else 0.
        avg_factor: the number of positive anchors (what the L1 loss divides by).
        mu, bins, loss_weight: GHM-R's (defaults: mmdet's and the paper's GHM config).

    Returns:
        ``counts`` (elements per bin), ``ratio_sum`` (per bin, the sum over its elements of
        |dGHMR/dpred| / |dL1/dpred|; divide by ``counts`` for the mean), ``elements``,
        ``abs_delta_sum`` (sum of |pred - target| over the elements). Sums, so that batches add.
    """
    if pred.shape != target.shape or pred.shape != weight.shape:
        raise ValueError(f'pred, target and weight must have one shape, got {tuple(pred.shape)}, '
                         f'{tuple(target.shape)}, {tuple(weight.shape)}')
    if avg_factor <= 0:
        raise ValueError(f'avg_factor must be > 0 (the number of positives), got {avg_factor}')
    pred = pred.detach().float().requires_grad_()
    target, weight = target.detach().float(), weight.detach().float()
    loss = GHMR(mu=mu, bins=bins, loss_weight=loss_weight, paper_exact=True)(pred, target, weight)
    grad = torch.autograd.grad(loss, pred)[0]
    valid = weight > 0
    diff = (pred - target).detach()[valid]
    slot, counts = gradient_density(asl1_gradient_norm(diff, mu), None, ghm_edges(bins, 1e3))
    # the L1 loss sum(w |d|) / avg_factor has gradient w / avg_factor on every element
    ratio = grad[valid].abs() * avg_factor / weight[valid]
    ratio_sum = torch.zeros(bins).index_add_(0, slot.long(), ratio)
    return dict(counts=counts.tolist(), ratio_sum=ratio_sum.tolist(), elements=int(valid.sum()),
                abs_delta_sum=float(diff.abs().sum()))


def merge_profiles(parts, mu: Optional[float] = None) -> Dict[str, Any]:
    """Batches' :func:`ghmr_profile` sums -> per-bin shares and mean gradient ratios."""
    parts = list(parts)
    if not parts:
        raise ValueError('no profile to merge')
    counts = torch.tensor([p['counts'] for p in parts]).sum(0)
    ratio = torch.tensor([p['ratio_sum'] for p in parts]).sum(0)
    elements = sum(p['elements'] for p in parts)
    mean_ratio = torch.where(counts > 0, ratio / counts.clamp(min=1), torch.nan)
    out = dict(elements=elements, bin_frac=(counts / max(elements, 1)).tolist(),
               grad_ratio=mean_ratio.tolist(),
               mean_grad_ratio=float(ratio.sum() / max(elements, 1)),
               mean_abs_delta=sum(p['abs_delta_sum'] for p in parts) / max(elements, 1))
    if mu is not None:
        out['mu'] = mu
    return out


__all__ = ['ghmr_profile', 'merge_profiles']
