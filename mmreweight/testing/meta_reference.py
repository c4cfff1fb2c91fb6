r"""Textbook create-graph implementations of L2RW and Meta-Weight-Net, for tests and the benchmark.

They follow the papers' reference code literally (a functional look-ahead with
``create_graph=True`` and a double backward through the network) and share nothing with
:mod:`mmreweight.weighting.alignment` except the head's anchor-target assignment and
per-anchor loss, so that agreement checks the factorised computation.

Both evaluate every forward on clones of the buffers (train-mode BN uses batch statistics; running
statistics are not touched), and the clean loss is the detector's full loss on the clean batch.
"""
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from mmdet.models.utils import unpack_gt_instances
from torch import Tensor, nn

from mmreweight.losses.utils import AVG_FACTOR_EPS
from mmreweight.weighting.levels import flatten_levels


class _Call(nn.Module):

    def __init__(self, module):
        super().__init__()
        self.m = module

    def forward(self, fn: Callable, *args: Any) -> Any:
        return fn(self.m, *args)


def functional(module: nn.Module, params: Dict[str, Tensor], fn, *args):
    """``fn(module, *args)`` with parameters ``params`` and cloned buffers."""
    tensors = {f'm.{k}': v for k, v in params.items()}
    tensors.update({f'm.{k}': b.detach().clone() for k, b in module.named_buffers()})
    return torch.func.functional_call(_Call(module), tensors, (fn, ) + args)


def per_anchor_losses(detector, inputs, data_samples):
    """(N,) per-anchor classification losses of a batch, and the head's flattened targets."""
    head = detector.bbox_head
    cls_scores, _ = head(detector.extract_feat(inputs))
    gts, gts_ignore, metas = unpack_gt_instances(data_samples)
    targets = head.flat_targets([c.shape[-2:] for c in cls_scores], gts, metas, gts_ignore,
                                device=inputs.device)
    logits = flatten_levels(cls_scores, head.cls_out_channels)
    return head.per_anchor_cls_loss(logits, targets.labels, targets.label_weights), targets


def detector_loss(detector, inputs, data_samples) -> Tensor:
    """Sum of the detector's loss terms (what mmengine's ``parse_losses`` backpropagates)."""
    with detector.bbox_head.plain_loss():
        losses = detector.loss(inputs, data_samples)
    return sum(sum(v) if isinstance(v, (list, tuple)) else v
               for k, v in losses.items() if 'loss' in k)


def _look_ahead(detector, theta_names, inner: Tensor, params, lrs):
    theta = [params[n] for n in theta_names]
    grads = torch.autograd.grad(inner, theta, create_graph=True, allow_unused=True)
    new = dict(params)
    for name, p, g, lr in zip(theta_names, theta, grads, lrs):
        new[name] = p if g is None else p - lr * g
    return new


def _lrs(lr, n):
    return list(lr) if isinstance(lr, (list, tuple)) else [lr] * n


def reference_l2rw_weights(detector, theta_names: Sequence[str], lr, train, clean,
                           normalise: str = 'mean_one', per: str = 'anchor',
                           clean_coefs: Optional[Sequence[float]] = None) -> Tensor:
    r"""L2RW as in Ren et al.'s PyTorch port: :math:`\epsilon = 0` (requires grad),
    :math:`\theta' = \theta - \alpha \nabla_\theta \sum_a \epsilon_a \ell_a` (create_graph),
    :math:`w = \max(0, -\partial L_\mathrm{clean}(\theta') / \partial \epsilon)`, mean one over
    valid anchors (``'mean_one'``), over valid foreground and background anchors separately
    (``'pos_neg'``), or over valid foreground anchors with background weight 1
    (``'foreground'``). ``per='annotation'``: one :math:`\epsilon_g` per annotation, shared by the
    valid anchors assigned to it (:math:`\epsilon_a = \epsilon_{g(a)}`), each anchor taking its
    annotation's weight. ``clean_coefs``: ``clean`` is a sequence of batches and the clean loss
    is :math:`\sum_k c_k L_k` (at one :math:`\theta`, the weights a moving average of the clean
    gradients with those coefficients gives)."""
    params = dict(detector.named_parameters())
    losses, targets = functional(detector, params, per_anchor_losses, *train)
    valid = targets.label_weights > 0
    if per == 'anchor':
        eps = torch.zeros_like(losses, requires_grad=True)
        eps_anchor = eps
    else:
        assigned = valid & (targets.gt_index >= 0)
        eps = losses.new_zeros(int(targets.gt_index.max()) + 1, requires_grad=True)
        eps_anchor = torch.where(assigned, eps[targets.gt_index.clamp(min=0)], 0.0)
    new = _look_ahead(detector, theta_names, (eps_anchor * losses).sum(), params,
                      _lrs(lr, len(theta_names)))
    if clean_coefs is None:
        clean_loss = functional(detector, new, detector_loss, *clean)
    else:
        clean_loss = sum(c * functional(detector, new, detector_loss, *batch)
                         for c, batch in zip(clean_coefs, clean, strict=True))
    raw = (-torch.autograd.grad(clean_loss, eps)[0]).clamp(min=0)
    if per == 'annotation':
        raw = torch.where(assigned, raw[targets.gt_index.clamp(min=0)], 0.0)
    positive = targets.labels < detector.bbox_head.num_classes
    groups = {'mean_one': [valid], 'pos_neg': [valid & positive, valid & ~positive],
              'foreground': [valid & positive]}[normalise]
    weights = valid.to(raw.dtype)  # 1 where no group sets a weight
    for group in groups:
        total = raw[group].sum()
        weights[group] = raw[group] * group.sum() / (total + (total == 0).to(raw.dtype))
    return weights.detach()


def reference_mwnet_hypergrad(detector, vnet: nn.Module, theta_names: Sequence[str], lr, train,
                              clean, normalise: str = 'mean_one') -> List[Tensor]:
    r"""Meta-Weight-Net's one-step unrolled hypergradient as in the authors' script:
    :math:`\theta'(\phi) = \theta - \alpha \nabla_\theta \sum_a w_a(\phi) \ell_a / \mathrm{avg}`
    with ``create_graph=True``, then :math:`\partial L_\mathrm{clean}(\theta') / \partial \phi`.
    ``normalise``: ``'mean_one'`` over valid anchors, ``'none'``, or ``'foreground'`` (mean one over
    valid foreground anchors, background weight 1)."""
    params = dict(detector.named_parameters())
    losses, targets = functional(detector, params, per_anchor_losses, *train)
    valid = targets.label_weights > 0
    weighted = valid & (targets.labels < detector.bbox_head.num_classes) \
        if normalise == 'foreground' else valid
    raw = vnet(losses.detach()[weighted].to(next(vnet.parameters()).dtype))
    weights = raw if normalise == 'none' else raw * weighted.sum() / raw.sum()
    rest = valid.to(losses.dtype) if normalise == 'foreground' else torch.zeros_like(losses)
    full = rest.masked_scatter(weighted, weights.to(losses.dtype))
    inner = (full * losses).sum() / (targets.avg_factor + AVG_FACTOR_EPS)
    new = _look_ahead(detector, theta_names, inner, params, _lrs(lr, len(theta_names)))
    clean_loss = functional(detector, new, detector_loss, *clean)
    return list(torch.autograd.grad(clean_loss, list(vnet.parameters())))


def reference_weight_grad(detector, theta_names: Sequence[str], lr, train, clean,
                          weights: Tensor) -> Tensor:
    r""":math:`\partial L_\mathrm{clean}(\theta') / \partial w_a` at the given per-anchor
    ``weights`` (one per anchor of ``train``), with :math:`\theta' = \theta - \alpha
    \nabla_\theta \sum_a w_a \ell_a / \mathrm{avg}` (create_graph): the coefficient each
    anchor's weight gets in a one-step look-ahead meta gradient."""
    params = dict(detector.named_parameters())
    losses, targets = functional(detector, params, per_anchor_losses, *train)
    w = weights.detach().to(losses.dtype).clone().requires_grad_()
    inner = (w * losses).sum() / (targets.avg_factor + AVG_FACTOR_EPS)
    new = _look_ahead(detector, theta_names, inner, params, _lrs(lr, len(theta_names)))
    clean_loss = functional(detector, new, detector_loss, *clean)
    return torch.autograd.grad(clean_loss, w)[0]


__all__ = ['functional', 'per_anchor_losses', 'detector_loss', 'reference_l2rw_weights',
           'reference_mwnet_hypergrad', 'reference_weight_grad']
