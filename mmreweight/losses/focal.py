"""Sigmoid focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017)."""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmreweight.registry import MODELS
from .base import ReweightLoss, check_use_sigmoid
from .utils import (check_number, class_dim_last, prepare_cls_inputs, resolve_reduction,
                    upcast, weight_reduce)


def _check_focal_params(alpha: Optional[float], gamma: float) -> None:
    check_number(alpha, 'alpha', 0.0, 1.0, none_ok=True)
    check_number(gamma, 'gamma', 0.0)


def sigmoid_focal_loss(logits: Tensor,
                       targets: Tensor,
                       alpha: Optional[float] = 0.25,
                       gamma: float = 2.0) -> Tensor:
    r"""Per-element sigmoid focal loss, Eq. (5) of Lin et al. (2017):

    .. math::
        \mathrm{FL}(p_t) = -\alpha_t (1 - p_t)^\gamma \log(p_t),\quad
        p_t = p\,t + (1 - p)(1 - t),\quad \alpha_t = \alpha\,t + (1 - \alpha)(1 - t),

    with :math:`p = \sigma(x)`. ``gamma=0`` and ``alpha=None`` give plain binary cross-entropy.

    Args:
        logits: logits :math:`x` of any shape.
        targets: same shape; ``bool`` for hard targets, or float in [0, 1] for soft targets.
        alpha: weight of positives in [0, 1]; ``None`` for no :math:`\alpha_t` factor.
        gamma: focusing parameter :math:`\gamma \ge 0`.

    Returns:
        The unreduced loss, shaped like ``logits``.
    """
    _check_focal_params(alpha, gamma)
    if targets.dtype == torch.bool:
        # With z = -x for positives and x for negatives, -log p_t = softplus(z) and
        # 1 - p_t = sigmoid(z): fewer passes than the soft formula and no saturated
        # sigmoid inside a log.
        z = logits * torch.where(targets, -1.0, 1.0).to(logits.dtype)
        loss = F.softplus(z)
        if gamma >= 1:
            loss = loss * torch.sigmoid(z).pow(gamma)
        elif gamma > 0:
            # d/ds s^gamma is infinite at s = 0 for gamma < 1 (NaN gradients on saturated
            # logits); exp(gamma * log s) in log space stays finite.
            loss = loss * torch.exp(gamma * F.logsigmoid(z))
        if alpha is not None:
            loss = loss * torch.where(targets, alpha, 1.0 - alpha)
        return loss
    p = torch.sigmoid(logits)
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    if gamma > 0:
        loss = loss * (p * (1 - targets) + (1 - p) * targets).pow(gamma)
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


@MODELS.register_module()
class FocalLoss(ReweightLoss):
    """Sigmoid focal loss for dense heads; a drop-in for mmdet's ``FocalLoss(use_sigmoid=True)``.

    Unlike mmdet's, it is the same pure-PyTorch code on every device (mmcv's CUDA kernel cannot
    be differentiated twice), computes in float32 for fp16/bf16 logits, and raises ValueError on
    bad inputs.

    Args:
        use_sigmoid: must be True (kept because heads read it from the config).
        gamma: focusing parameter.
        alpha: weight of positives; ``None`` for none.
        reduction, loss_weight, check_values, check_finite: see :class:`ReweightLoss`.
    """

    def __init__(self,
                 use_sigmoid: bool = True,
                 gamma: float = 2.0,
                 alpha: Optional[float] = 0.25,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 check_values: bool = True,
                 check_finite: bool = False) -> None:
        super().__init__(reduction, loss_weight, check_values, check_finite)
        check_use_sigmoid(use_sigmoid, True, 'FocalLoss')
        _check_focal_params(alpha, gamma)
        self.use_sigmoid = True
        self.gamma = float(gamma)
        self.alpha = alpha

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args:
            pred: ``(N, C)`` logits, or dense ``(B, C, *)`` logits (:func:`class_dim_last`).
            target: ``(N,)`` class indices (``C`` = background) or ``(N, C)`` binary targets;
                for dense logits ``(B, *)`` class indices or ``(B, C, *)`` binary targets.
            weight: ``(N,)``, ``(N, C)`` or ``(N * C,)`` non-negative weights; for dense logits
                ``(B, *)`` or ``(B, C, *)``.
            avg_factor: divisor of the summed loss for 'mean' (e.g. the number of positives).
            reduction_override: 'none' | 'mean' | 'sum' for this call.

        Returns:
            The reduced loss, or with 'none' the per-element loss shaped like ``pred``.
        """
        reduction = resolve_reduction(self.reduction, reduction_override, avg_factor)
        pred, target, weight, restore = class_dim_last(pred, target, weight)
        targets, weight = prepare_cls_inputs(pred, target, weight, self.check_values,
                                             self.check_finite)
        loss = sigmoid_focal_loss(upcast(pred), targets, self.alpha, self.gamma)
        loss = self.loss_weight * weight_reduce(loss, weight, reduction, avg_factor)
        return restore(loss) if reduction == 'none' else loss

    def extra_repr(self) -> str:
        return f'gamma={self.gamma}, alpha={self.alpha}, ' + super().extra_repr()
