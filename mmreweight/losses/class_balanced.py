r"""Class-balanced loss (Cui, Jia, Lin, Song & Belongie, "Class-Balanced Loss Based on Effective
Number of Samples", CVPR 2019)."""
import math
import warnings
from typing import Any, Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmreweight.registry import MODELS
from .base import ReweightLoss, check_use_sigmoid, fit_loaded_statistics
from .focal import _check_focal_params, sigmoid_focal_loss
from .utils import (broadcast_weight, check_input_values, check_number, check_pred,
                    class_dim_last, is_class_indices, prepare_cls_inputs, resolve_reduction,
                    upcast, weight_reduce)

LOSS_TYPES = ('sigmoid', 'softmax', 'focal')
ZERO_COUNT_POLICIES = ('rarest', 'error')


def check_beta(beta: float) -> float:
    return check_number(beta, 'beta', 0.0, 1.0, high_open=True)


def class_balanced_weights(counts: Union[Tensor, Sequence[int]],
                           beta: float,
                           zero_count_policy: str = 'rarest',
                           class_names: Optional[Sequence[str]] = None) -> Tensor:
    r"""Per-class weights from the effective number of samples (Eq. 3 and Sec. 4 of Cui et al.):

    .. math::
        E_{n_c} = \frac{1 - \beta^{n_c}}{1 - \beta}, \qquad
        w_c = \frac{1}{E_{n_c}} = \frac{1 - \beta}{1 - \beta^{n_c}}, \qquad
        w_c \leftarrow C \, \frac{w_c}{\sum_{c'} w_{c'}},

    normalised to sum to the number of classes :math:`C` as in the authors' code. ``beta = 0``
    gives uniform weights; :math:`\beta \to 1` gives inverse class frequency.

    A class with no sample has no finite weight. ``zero_count_policy='rarest'`` gives it the
    weight of the rarest class seen (the largest weight) and warns, naming the classes;
    ``'error'`` raises ValueError.

    Args:
        counts: ``(C,)`` number of training samples per class.
        beta: :math:`\beta \in [0, 1)`.
        zero_count_policy: ``'rarest'`` or ``'error'``.
        class_names: names used in the warning or error (class indices otherwise).

    Returns:
        ``(C,)`` float32 weights summing to ``C``.
    """
    beta = check_beta(beta)
    if zero_count_policy not in ZERO_COUNT_POLICIES:
        raise ValueError(f'zero_count_policy must be one of {ZERO_COUNT_POLICIES}, '
                         f'got {zero_count_policy!r}')
    counts = torch.as_tensor(counts).detach().cpu().double()
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f'counts must be a non-empty 1-D sequence, got shape '
                         f'{tuple(counts.shape)}')
    if not (torch.isfinite(counts).all() and (counts >= 0).all()):
        raise ValueError('counts must be finite and non-negative')
    seen = counts > 0
    if not seen.any():
        raise ValueError('counts are all zero: no class has a sample')
    # 1 - beta^n as -expm1(n log beta): no cancellation for beta close to 1 and small n
    log_beta = math.log(beta) if beta > 0 else -math.inf
    weights = torch.where(seen, (1 - beta) / -torch.expm1(counts.where(seen, 1.0) * log_beta), 0.0)
    if not seen.all():
        missing = torch.nonzero(~seen).flatten().tolist()
        names = [class_names[i] if class_names is not None else str(i) for i in missing]
        if zero_count_policy == 'error':
            raise ValueError(f'classes without any sample: {", ".join(names)}')
        warnings.warn(f'classes without any sample get the weight of the rarest seen class: '
                      f'{", ".join(names)}')
        weights[~seen] = weights[seen].max()
    return (weights * (len(weights) / weights.sum())).float()


def anchor_class_weights(target: Tensor, class_weights: Tensor) -> Tensor:
    """``(N, 1)`` weight of each anchor's class.

    Args:
        target: ``(N,)`` class indices, or ``(N, C)`` binary/soft targets whose positive classes
            are averaged (the class's weight for one-hot rows).
        class_weights: ``(C + 1,)`` weights; the last one is background's (anchors without
            any positive class).
    """
    if target.dim() == 1:
        return class_weights[target].unsqueeze(1)
    target = target.to(class_weights.dtype)
    mass = target.sum(1, keepdim=True)
    mean = (target @ class_weights[:-1].unsqueeze(1)) / mass.clamp(min=torch.finfo(mass.dtype).tiny)
    return torch.where(mass > 0, mean, class_weights[-1])


@MODELS.register_module()
class CBFocalLoss(ReweightLoss):
    r"""Class-balanced loss of Cui et al.: each anchor's loss is scaled by the class-balanced
    weight of its ground-truth class (:func:`class_balanced_weights`).

    ``loss_type``:

    * ``'focal'`` (default): sigmoid focal loss (no :math:`\alpha` by default, as Cui et al.;
      the class weight takes its role);
    * ``'sigmoid'``: binary cross-entropy over the ``C`` sigmoid outputs;
    * ``'softmax'``: cross-entropy over ``C + 1`` outputs (background last; set
      ``use_sigmoid=False`` in the config, as mmdet's heads read it) or ``C`` outputs (no
      background, e.g. classification).

    Background: detection has no count for the background class (it is not annotated, and its
    anchors outnumber objects 1000:1). Anchors of no class therefore get weight 1, the mean
    weight of the foreground classes (weights sum to ``C``): class balancing redistributes
    weight among object classes and leaves the foreground/background balance to focal loss and
    the head's normaliser (``avg_factor`` = number of positives, as Cui et al. normalise).

    Class counts live in the ``class_counts`` buffer (saved in checkpoints). Give them here, or
    leave ``class_counts=None`` and add ``ClassCountsHook``, which counts the training set's
    instances before training.

    Args:
        num_classes: number of foreground classes ``C``.
        class_counts: ``(C,)`` training instances per class, or None (filled by the hook).
        beta: :math:`\beta \in [0, 1)`; 0.9999 in Cui et al.'s long-tailed CIFAR runs.
        gamma: focusing parameter of ``'focal'`` (2.0 as RetinaNet; Cui et al. used 0.5-2.0).
        alpha: optional :math:`\alpha` of ``'focal'``; None for none.
        loss_type: ``'focal'``, ``'sigmoid'`` or ``'softmax'``.
        zero_count_policy: see :func:`class_balanced_weights`.
        use_sigmoid: optional; must agree with ``loss_type`` (heads read it from the config).
        reduction, loss_weight, check_values, check_finite: see :class:`ReweightLoss`.
        restart_statistics: a checkpoint whose ``class_counts`` count other classes is loaded
            with fresh counts and a warning instead of an error.
    """

    def __init__(self,
                 num_classes: int,
                 class_counts: Optional[Union[Tensor, Sequence[int]]] = None,
                 beta: float = 0.9999,
                 gamma: float = 2.0,
                 alpha: Optional[float] = None,
                 loss_type: str = 'focal',
                 zero_count_policy: str = 'rarest',
                 use_sigmoid: Optional[bool] = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 check_values: bool = True,
                 check_finite: bool = False,
                 restart_statistics: bool = False) -> None:
        super().__init__(reduction, loss_weight, check_values, check_finite)
        self.restart_statistics = bool(restart_statistics)
        if loss_type not in LOSS_TYPES:
            raise ValueError(f'loss_type must be one of {LOSS_TYPES}, got {loss_type!r}')
        if zero_count_policy not in ZERO_COUNT_POLICIES:
            raise ValueError(f'zero_count_policy must be one of {ZERO_COUNT_POLICIES}, '
                             f'got {zero_count_policy!r}')
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f'num_classes must be a positive integer, got {num_classes}')
        check_use_sigmoid(use_sigmoid, loss_type != 'softmax', f'CBFocalLoss({loss_type!r})')
        _check_focal_params(alpha, gamma)
        self.num_classes = int(num_classes)
        self.beta = check_beta(beta)
        self.gamma = float(gamma)
        self.alpha = alpha
        self.loss_type = loss_type
        self.use_sigmoid = loss_type != 'softmax'
        self.zero_count_policy = zero_count_policy
        self.register_buffer('class_counts', torch.zeros(self.num_classes, dtype=torch.long))
        # weights of the C classes and of background (last), derived from the counts
        self.register_buffer('class_weights', torch.ones(self.num_classes + 1), persistent=False)
        self.counts_explicit = class_counts is not None
        self.has_counts = False
        if class_counts is not None:
            self.set_class_counts(class_counts)

    def set_class_counts(self, counts: Union[Tensor, Sequence[int]],
                         class_names: Optional[Sequence[str]] = None) -> Tensor:
        """Store ``(C,)`` per-class counts and derive the class weights; returns the weights."""
        counts = torch.as_tensor(counts)
        if counts.shape != (self.num_classes, ):
            raise ValueError(f'class_counts must have num_classes={self.num_classes} entries, '
                             f'got shape {tuple(counts.shape)}')
        if counts.is_floating_point() and not torch.equal(counts, counts.round()):
            raise ValueError('class_counts must be whole numbers')
        weights = class_balanced_weights(counts, self.beta, self.zero_count_policy, class_names)
        self.class_counts.copy_(counts.long())
        self.class_weights[:-1] = weights
        self.has_counts = True
        return weights

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        fit_loaded_statistics(self, state_dict, prefix + 'class_counts', self.restart_statistics)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + 'class_counts' in state_dict and self.class_counts.any():
            self.set_class_counts(self.class_counts.clone())

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args:
            pred: ``(N, C)`` logits (``(N, C + 1)`` or ``(N, C)`` for ``'softmax'``), or dense
                ``(B, C, *)`` logits (:func:`~mmreweight.losses.utils.class_dim_last`).
            target: ``(N,)`` class indices (``C`` = background); ``(N, C)`` binary targets are
                also accepted by the sigmoid loss types. For dense logits ``(B, *)`` or
                ``(B, C, *)``.
            weight: ``(N,)`` weights (also ``(N, C)`` / ``(N * C,)`` for the sigmoid types); for
                dense logits ``(B, *)`` or ``(B, C, *)``.
            avg_factor: divisor of the summed loss for 'mean' (e.g. the number of positives).
            reduction_override: 'none' | 'mean' | 'sum' for this call.

        Returns:
            The reduced loss, or with 'none' the unreduced loss (per element for the sigmoid
            types, per row for ``'softmax'``), dense inputs' layout kept.
        """
        reduction = resolve_reduction(self.reduction, reduction_override, avg_factor)
        if not self.has_counts:
            raise RuntimeError('CBFocalLoss has no class counts: pass class_counts=... or add '
                               "dict(type='mmreweight.ClassCountsHook') to custom_hooks")
        pred, target, weight, restore = class_dim_last(pred, target, weight)
        check_pred(pred)
        class_weights = self.class_weights.float()
        if self.loss_type == 'softmax':
            loss, cb_weight, weight = self._softmax_loss(pred, target, weight, class_weights)
        else:
            if pred.shape[1] != self.num_classes:
                raise ValueError(f'pred has {pred.shape[1]} columns, expected num_classes='
                                 f'{self.num_classes} (with loss_type={self.loss_type!r} the '
                                 'head config needs use_sigmoid=True)')
            targets, weight = prepare_cls_inputs(pred, target, weight, self.check_values,
                                                 self.check_finite)
            gamma = self.gamma if self.loss_type == 'focal' else 0.0
            alpha = self.alpha if self.loss_type == 'focal' else None
            loss = sigmoid_focal_loss(upcast(pred), targets, alpha, gamma)
            cb_weight = anchor_class_weights(target if target.dim() == 1 else targets,
                                             class_weights)
        weight = cb_weight if weight is None else cb_weight * weight
        loss = self.loss_weight * weight_reduce(loss, weight, reduction, avg_factor)
        return restore(loss) if reduction == 'none' else loss

    def _softmax_loss(self, pred, target, weight, class_weights):
        if pred.shape[1] not in (self.num_classes, self.num_classes + 1):
            raise ValueError(f'pred has {pred.shape[1]} columns, expected num_classes + 1 = '
                             f'{self.num_classes + 1} (or num_classes without background)')
        if not is_class_indices(pred, target):
            raise ValueError("loss_type='softmax' needs (N,) class indices as target")
        weight = broadcast_weight(weight, target.shape)
        check_input_values(labels=target if self.check_values else None,
                           max_label=pred.shape[1] - 1,
                           weight=weight if self.check_values else None,
                           pred=pred if self.check_finite else None)
        loss = F.cross_entropy(upcast(pred), target, reduction='none')
        return loss, class_weights[target], weight

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, beta={self.beta}, loss_type={self.loss_type!r}, '
                f'gamma={self.gamma}, alpha={self.alpha}, ' + super().extra_repr())
