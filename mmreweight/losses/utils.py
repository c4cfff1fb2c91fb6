"""Helpers shared by every loss: input checks, target expansion, weight broadcasting, reduction.

Conventions (those of mmdet's dense heads):

* ``pred`` is ``(N, C)`` logits, one row per anchor;
* ``target`` is either ``(N,)`` class indices in ``[0, C]`` where ``C`` (== ``num_classes``) is
  background, or ``(N, C)`` binary / soft targets;
* ``weight`` is ``None``, per anchor ``(N,)``, per element ``(N, C)`` or per element flattened
  ``(N * C,)`` (as mmdet's focal loss accepts).

Dense ``(B, C, *)`` logits (as mmdet's ``FocalLoss`` takes them) are brought to that form by
:func:`class_dim_last`.

Shape checks are free and always on. Value checks (labels in range, weights >= 0, optionally
finite logits) need the values on the host, so they are batched into a single device-to-host
copy per call and can be switched off (``check_values=False``) where even that sync matters.
"""
import math
import numbers
from typing import Callable, List, Optional, Tuple, Union

import torch
from torch import Tensor

REDUCTIONS = ('none', 'mean', 'sum')

#: added to ``avg_factor`` before dividing by it, as mmdet's ``weight_reduce_loss`` does, so that
#: ``avg_factor == 0`` gives 0 rather than NaN and uniform weights reproduce mmdet's losses to the
#: last bit that float addition allows
AVG_FACTOR_EPS = torch.finfo(torch.float32).eps

#: dtypes whose statistics and losses are computed in float32 instead
LOW_PRECISION = (torch.float16, torch.bfloat16)


def check_reduction(reduction: str, name: str = 'reduction') -> str:
    """Return ``reduction`` if it is one of ``'none' | 'mean' | 'sum'``, else raise ValueError."""
    if reduction not in REDUCTIONS:
        raise ValueError(f'{name} must be one of {REDUCTIONS}, got {reduction!r}')
    return reduction


def check_number(value, name: str, low: float = -math.inf, high: float = math.inf,
                 high_open: bool = False, none_ok: bool = False) -> Optional[float]:
    """``value`` as a float if it is a finite real number in ``[low, high]`` (``[low, high)``
    with ``high_open``; ``None`` passes with ``none_ok``), else ValueError naming the argument and
    its range. A NaN would pass every ``<``/``>`` check and change the loss silently (NaN gamma
    computes the gamma=0 loss, inf gamma a zero loss)."""
    if value is None and none_ok:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = low <= value and (value < high if high_open else value <= high)
    if not ok:
        if high == math.inf:
            allowed = f'a finite number >= {low:g}'
        else:
            allowed = f'in [{low:g}, {high:g}{")" if high_open else "]"}'
        raise ValueError(f'{name} must be {allowed}{" or None" if none_ok else ""}, '
                         f'got {value!r}')
    return float(value)


def resolve_reduction(default: str, override: Optional[str],
                      avg_factor: Optional[Union[float, Tensor]]) -> str:
    """The reduction of one call; like mmdet, ``avg_factor`` goes with 'mean' or 'none' only."""
    reduction = default if override is None else check_reduction(override, 'reduction_override')
    if avg_factor is not None and reduction == 'sum':
        raise ValueError('avg_factor can not be used with reduction="sum"')
    return reduction


def upcast(x: Tensor) -> Tensor:
    """``x`` in float32 if it is fp16/bf16: losses and GHM statistics are never computed in half.

    fp16 overflows at 65504 (GHM's ``tot / num_in_bin`` alone can exceed it) and bf16 has a
    7-bit mantissa, too coarse for a sum over ~10^5 anchors. The cast is differentiable, so the
    gradient still reaches the half-precision logits.
    """
    return x.float() if x.dtype in LOW_PRECISION else x


def one_hot_targets(labels: Tensor, num_classes: int) -> Tensor:
    """``(N,)`` class indices -> ``(N, num_classes)`` bool; index ``num_classes`` (background)
    becomes an all-False row.

    A comparison with ``arange`` rather than ``F.one_hot``: no int64 ``(N, C+1)`` temporary and
    no hidden range check (a host sync on GPU); the range is checked by :func:`check_input_values`.
    """
    classes = torch.arange(num_classes, device=labels.device)
    return labels.unsqueeze(1) == classes


def class_dim_last(
    pred: Tensor, target: Tensor, weight: Optional[Tensor] = None
) -> Tuple[Tensor, Tensor, Optional[Tensor], Callable[[Tensor], Tensor]]:
    """Dense ``(B, C, *)`` inputs as rows: the class dim moved last and the rest flattened.

    ``pred`` ``(B, C, *)`` becomes ``(N, C)`` with ``N = B * prod(*)``; ``target`` either
    ``(B, C, *)`` like ``pred`` (one-hot / binary / soft) becoming ``(N, C)``, or ``(B, *)`` class
    indices becoming ``(N,)``; ``weight`` ``(B, C, *)`` becomes ``(N, C)`` and ``(B, *)`` becomes
    ``(N,)``. The returned function brings an unreduced ``(N, C)`` or ``(N,)`` loss back to
    ``(B, C, *)`` or ``(B, *)``. Inputs with ``pred.dim() <= 2`` are returned as they are.
    """
    if pred.dim() <= 2:
        return pred, target, weight, lambda loss: loss
    batch, channels, rest = pred.shape[0], pred.shape[1], tuple(pred.shape[2:])

    def rows(t: Tensor, name: str) -> Tensor:
        if t.shape == pred.shape:
            return t.movedim(1, -1).reshape(-1, channels)
        if t.shape == (batch, ) + rest:
            return t.reshape(-1)
        raise ValueError(f'{name} must be {tuple(pred.shape)} like pred or '
                         f'{(batch, ) + rest} (no class dim), got shape {tuple(t.shape)}')

    def restore(loss: Tensor) -> Tensor:
        if loss.dim() == 2:
            return loss.reshape((batch, ) + rest + (loss.shape[1], )).movedim(-1, 1)
        return loss.reshape((batch, ) + rest)

    return (rows(pred, 'pred'), rows(target, 'target'),
            None if weight is None else rows(weight, 'weight'), restore)


def check_pred(pred: Tensor, ndim: int = 2) -> None:
    if pred.dim() != ndim:
        raise ValueError(f'pred must have {ndim} dims (N, C), got shape {tuple(pred.shape)}')
    if not pred.is_floating_point():
        raise ValueError(f'pred must be floating point, got {pred.dtype}')


def is_class_indices(pred: Tensor, target: Tensor) -> bool:
    """Whether ``target`` holds class indices ``(N,)`` rather than ``(N, C)`` binary targets;
    raises ValueError naming ``target`` if it is neither."""
    if target.dim() == 1 and target.shape[0] == pred.shape[0]:
        if target.is_floating_point() or target.dtype == torch.bool:
            raise ValueError(f'target of shape (N,) must hold integer class indices, '
                             f'got {target.dtype}')
        return True
    if target.shape == pred.shape:
        return False
    raise ValueError(f'target must be (N,) class indices or (N, C) like pred '
                     f'{tuple(pred.shape)}, got shape {tuple(target.shape)}')


def binary_targets(pred: Tensor, target: Tensor) -> Tensor:
    """``(N, C)`` targets for a sigmoid loss: bool for hard targets (class indices, bool or
    integer one-hot), float for soft ones (in ``pred``'s compute dtype)."""
    if is_class_indices(pred, target):
        return one_hot_targets(target, pred.shape[1])
    if target.is_floating_point():
        return target.to(upcast(pred).dtype)
    return target != 0


def broadcast_weight(weight: Optional[Tensor], loss_shape: torch.Size) -> Optional[Tensor]:
    """``weight`` shaped to multiply a loss of ``loss_shape``; raises ValueError naming ``weight``.

    Accepts ``(N,)`` per anchor (viewed as ``(N, 1)``), ``loss_shape`` itself, or that many
    elements flattened (FSAF-style per anchor-class weights).
    """
    if weight is None:
        return None
    if weight.shape == loss_shape:
        return weight
    n = loss_shape[0]
    if weight.dim() == 1 and weight.shape[0] == n:
        return weight.view((n, ) + (1, ) * (len(loss_shape) - 1))
    if weight.dim() == 1 and weight.numel() == loss_shape.numel():
        return weight.view(loss_shape)
    raise ValueError(f'weight must be (N,), {tuple(loss_shape)} or flattened '
                     f'({loss_shape.numel()},), got shape {tuple(weight.shape)}')


def check_input_values(*,
                       labels: Optional[Tensor] = None,
                       max_label: Optional[int] = None,
                       binary: Optional[Tensor] = None,
                       weight: Optional[Tensor] = None,
                       pred: Optional[Tensor] = None) -> None:
    """Raise ValueError naming the argument if any given tensor holds a bad value.

    Checks ``labels`` in ``[0, max_label]``, float ``binary`` targets in ``[0, 1]``,
    ``weight`` >= 0 (NaN included) and ``pred`` finite. All checks are gathered into one tensor
    and copied to the host once.
    """
    checks: List[Tuple[Tensor, str]] = []
    if labels is not None:
        checks.append((((labels < 0) | (labels > max_label)).any(),
                       f'target holds class indices outside [0, {max_label}]'))
    if binary is not None and binary.is_floating_point():
        checks.append((~((binary >= 0) & (binary <= 1)).all(),
                       'target of shape (N, C) must hold values in [0, 1]'))
    if weight is not None:
        checks.append((~(weight >= 0).all(), 'weight must be non-negative (and not NaN)'))
    if pred is not None:
        checks.append((~torch.isfinite(pred).all(), 'pred holds non-finite values (inf or NaN)'))
    if not checks:
        return
    flags = torch.stack([flag for flag, _ in checks]).tolist()
    for bad, (_, message) in zip(flags, checks):
        if bad:
            raise ValueError(message)


def weight_reduce(loss: Tensor,
                  weight: Optional[Tensor] = None,
                  reduction: str = 'mean',
                  avg_factor: Optional[Union[float, Tensor]] = None) -> Tensor:
    """Multiply ``loss`` by ``weight`` and reduce it; mmdet's ``weight_reduce_loss`` semantics.

    'mean' divides the sum by ``avg_factor`` (+ float32 eps, so that ``avg_factor == 0`` gives 0,
    not NaN) when it is given, else takes the mean over all elements; 'none' ignores
    ``avg_factor``; 'sum' rejects it.
    """
    check_reduction(reduction)
    if weight is not None:
        loss = loss * weight
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        if avg_factor is not None:
            raise ValueError('avg_factor can not be used with reduction="sum"')
        return loss.sum()
    if avg_factor is None:
        return loss.mean()
    return loss.sum() / (avg_factor + AVG_FACTOR_EPS)


def prepare_cls_inputs(pred: Tensor,
                       target: Tensor,
                       weight: Optional[Tensor],
                       check_values: bool = True,
                       check_finite: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
    """Validate a sigmoid classification loss's inputs and bring them to ``(N, C)`` form.

    Returns:
        ``(targets, weight)``: :func:`binary_targets` and :func:`broadcast_weight` of the inputs.
    """
    check_pred(pred)
    indices = is_class_indices(pred, target)
    targets = binary_targets(pred, target)
    weight = broadcast_weight(weight, pred.shape)
    check_input_values(
        labels=target if check_values and indices else None,
        max_label=pred.shape[1],  # index C is background
        binary=targets if check_values and not indices else None,
        weight=weight if check_values else None,
        pred=pred if check_finite else None)
    return targets, weight
