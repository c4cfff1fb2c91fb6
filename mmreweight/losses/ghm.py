r"""GHM-C and GHM-R losses (Li, Liu & Wang, "Gradient Harmonized Single-stage Detector", AAAI 2019).

Both weight each element's loss by its harmonizing weight (see :mod:`.gradient_density`):

.. math::
    L_{GHM} = \frac{1}{N} \sum_i \beta_i \, L_i, \qquad \beta_i = \frac{N}{n \, S_{b(i)}}.

Without momentum :math:`N` cancels and the loss is the average over non-empty bins of the mean
loss inside each bin.

Started from a randomly initialised detector, the harmonizing weights of the first iterations
come from a histogram of untrained outputs, and GHM-R's :math:`\mu = 0.02` (tuned for COCO's box
deltas) puts most box coordinates in its top bin. Both losses therefore warm up by default:
over ``warmup_iters`` training iterations the loss moves linearly from its plain counterpart
(sigmoid focal loss for GHM-C, the unweighted authentic smooth L1 for GHM-R) to the harmonized
loss, while the moving averages already count; and GHM-R's ``mu='auto'`` takes :math:`\mu` from
the data, a quantile of :math:`|d|` over the first iterations, then frozen. From the end of the
warm-up on, the loss is the paper's. ``paper_exact=True`` turns both off: the paper's loss from
the first iteration, equal to mmdet's ``GHMC``/``GHMR``.
"""
import math
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from mmreweight.registry import MODELS
from .base import ReweightLoss, check_use_sigmoid, fit_loaded_statistics
from .focal import sigmoid_focal_loss
from .gradient_density import (floor_binning_is_exact, ghm_edges, gradient_density,
                               harmonizing_weights)
from .progress import linear_ramp, runner_iteration
from .utils import (broadcast_weight, check_input_values, check_number, prepare_cls_inputs,
                    resolve_reduction, upcast, weight_reduce)


def bce_gradient_norm(logits: Tensor, targets: Tensor) -> Tensor:
    r"""GHM-C's gradient norm :math:`g = |\sigma(x) - t|` (Eq. 2), the norm of the gradient of
    binary cross-entropy w.r.t. the logit; ``targets`` bool or float. Not differentiable."""
    p = torch.sigmoid(logits.detach())
    if targets.dtype == torch.bool:
        return torch.where(targets, 1 - p, p)
    return (p - targets).abs()


def authentic_smooth_l1(diff: Tensor, mu: float = 0.02) -> Tensor:
    r"""Authentic smooth L1 loss (Eq. 11): :math:`\mathrm{ASL}_1(d) = \sqrt{d^2 + \mu^2} - \mu`.

    Smooth everywhere (twice differentiable, unlike smooth L1), quadratic for :math:`|d| \ll \mu`
    and linear for :math:`|d| \gg \mu`. ``diff`` is prediction minus target, any shape.
    """
    return torch.sqrt(diff * diff + mu * mu) - mu


def asl1_gradient_norm(diff: Tensor, mu: float = 0.02) -> Tensor:
    r"""GHM-R's gradient norm :math:`g = |d| / \sqrt{d^2 + \mu^2}` (Eq. 12), in [0, 1).
    Not differentiable."""
    diff = diff.detach()
    return torch.abs(diff / torch.sqrt(mu * mu + diff * diff))


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _check_non_negative_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(f'{name} must be a non-negative integer, got {value!r}')
    return int(value)


class _GHMLoss(ReweightLoss):
    """Bins, moving averages and normalisation shared by GHM-C and GHM-R.

    Moving averages live in the ``(num_levels, bins)`` buffer ``acc_sum``, one row per FPN level
    (see :func:`~mmreweight.losses.count_fpn_levels`); they are saved in checkpoints, and a
    ``(bins,)`` ``acc_sum`` from an mmdet checkpoint is loaded into every row.
    """

    anchor_separable = False  # the histogram spans the whole call

    #: with mmdet_compat, N is the sum of the weights (mmdet's GHM-R), not the number of
    #: elements of weight > 0 (mmdet's GHM-C); the two agree for 0/1 weights
    mmdet_tot_is_weight_sum = False

    def __init__(self,
                 bins: int,
                 momentum: float,
                 last_edge: float,
                 num_levels: int,
                 sync_stats: Optional[bool],
                 mmdet_compat: bool,
                 warmup_iters: int,
                 paper_exact: bool,
                 restart_statistics: bool,
                 reduction: str,
                 loss_weight: float,
                 check_values: bool,
                 check_finite: bool) -> None:
        super().__init__(reduction, loss_weight, check_values, check_finite)
        if _check_non_negative_int(bins, 'bins') < 1:
            raise ValueError(f'bins must be a positive integer, got {bins}')
        check_number(momentum, 'momentum', 0.0, 1.0, high_open=True)
        if _check_non_negative_int(num_levels, 'num_levels') < 1:
            raise ValueError(f'num_levels must be a positive integer, got {num_levels}')
        self.bins = int(bins)
        self.momentum = float(momentum)
        self.num_levels = int(num_levels)
        self.sync_stats = sync_stats
        self.mmdet_compat = bool(mmdet_compat)
        self.restart_statistics = bool(restart_statistics)
        # mmdet's behaviour is the paper's from the first iteration
        self.paper_exact = bool(paper_exact) or self.mmdet_compat
        warmup_iters = _check_non_negative_int(warmup_iters, 'warmup_iters')
        self.warmup_iters = 0 if self.paper_exact else warmup_iters
        #: the share of the harmonized loss in the last call, for logging (1 after warm-up)
        self.last_share = 1.0
        self.register_buffer('edges', ghm_edges(self.bins, last_edge))
        self._floor_exact = floor_binning_is_exact(self.edges)
        if self.momentum > 0:
            self.register_buffer('acc_sum', torch.zeros(self.num_levels, self.bins))

    def harmonizing_share(self) -> float:
        """The weight of the harmonized loss in this call: rises linearly from 0 at the first
        training iteration to 1 at ``warmup_iters``; 1 outside a runner, in evaluation mode and
        with ``paper_exact``."""
        share = linear_ramp(runner_iteration(), self.warmup_iters) if self.training else 1.0
        self.last_share = share
        return share

    def _weights(self, g: Tensor, weight: Optional[Tensor], shape: torch.Size,
                 all_positive: bool = False) -> Tuple[Tensor, Tensor]:
        """Per-element weights (harmonizing weight times ``weight``) of elements with gradient
        norms ``g``, and the divisor of the summed loss for 'mean'. ``all_positive``: the caller
        knows every element of ``weight`` is > 0 (no mask to build)."""
        valid = None if weight is None or all_positive else weight > 0
        with torch.no_grad():
            slot, counts = gradient_density(g, valid, self.edges, self._floor_exact)
            if weight is not None and self.mmdet_compat and self.mmdet_tot_is_weight_sum:
                tot = weight.expand(shape).sum(dtype=torch.float32)
            elif valid is None:
                tot = torch.full((), shape.numel(), dtype=torch.float32, device=g.device)
            else:
                tot = valid.expand(shape).sum(dtype=torch.float32)
            world = 1
            if self.sync_stats or (self.sync_stats is None and _distributed()):
                # every rank must see the same histogram, or ranks would weight alike
                # gradients differently
                stats = torch.cat([counts, tot.view(1)])
                dist.all_reduce(stats)
                counts, tot = stats[:-1], stats[-1]
                world = dist.get_world_size()
            tot = tot.clamp(min=1)
            if self.momentum > 0:
                level = 0 if self.mmdet_compat else self.next_fpn_level(self.num_levels)
                ghm_weight, acc = harmonizing_weights(slot, counts, tot, self.acc_sum[level],
                                                      self.momentum)
                if self.update_stats:
                    self.acc_sum[level] = acc
            else:
                ghm_weight, _ = harmonizing_weights(slot, counts, tot)
        if weight is not None and not self.mmdet_compat:
            ghm_weight = ghm_weight * weight  # a real weight, not just a mask (mmdet's use)
        # The sum over all ranks divided by the global N is the paper's loss of the global
        # batch; DDP averages gradients over ranks, hence N / world on each.
        return ghm_weight, tot / world

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        key = prefix + 'acc_sum'
        acc = state_dict.get(key)
        if self.momentum > 0:
            if acc is not None and acc.dim() == 1 and acc.numel() == self.bins:
                state_dict[key] = acc.expand(self.num_levels, -1).clone()  # mmdet's single row
            fit_loaded_statistics(self, state_dict, key, self.restart_statistics)
        edges = state_dict.get(prefix + 'edges')
        if self.restart_statistics and edges is not None and edges.shape != self.edges.shape:
            del state_dict[prefix + 'edges']  # the other bins' edges go with their statistics
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f'bins={self.bins}, momentum={self.momentum}, num_levels={self.num_levels}, '
                f'warmup_iters={self.warmup_iters}, paper_exact={self.paper_exact}, '
                f'mmdet_compat={self.mmdet_compat}, ' + super().extra_repr())


_GHM_ARGS_DOC = """
        num_levels: rows of the moving average, one per FPN level. Calls inside
            :func:`~mmreweight.losses.count_fpn_levels` (as ``LevelAwareRetinaHead`` makes them)
            use one row per level; calls outside it all use row 0, like mmdet's single buffer.
        sync_stats: all-reduce bin counts and ``N`` over DDP ranks so that every rank uses the
            same weights. ``None``: whenever ``torch.distributed`` is initialised.
        mmdet_compat: reproduce mmdet exactly: weights are only a 0/1 mask, and moving averages
            use a single row whatever the level. Implies ``paper_exact``.
        warmup_iters: training iterations (as the runner counts them) over which the loss moves
            linearly from its plain counterpart to the harmonized loss; 0 for none.
        paper_exact: the paper's loss from the first iteration: no warm-up (and for GHM-R a
            fixed ``mu``, 0.02 where ``mu='auto'``).
        restart_statistics: a checkpoint whose moving averages have another shape (other
            ``bins`` or ``num_levels``) is loaded with fresh statistics and a warning instead of
            an error.
        reduction: 'mean' is the paper's normalisation, the weighted sum divided by ``N``; the
            ``avg_factor`` that heads pass (number of positives) is deliberately ignored, since
            the harmonizing weights already sum to ``N``. 'sum' is mmdet's 'none' summed.
        loss_weight, check_values, check_finite: see :class:`~mmreweight.losses.ReweightLoss`.
"""


@MODELS.register_module()
class GHMC(_GHMLoss):
    __doc__ = r"""GHM-C: binary cross-entropy weighted by the harmonizing weights of
    :math:`g = |\sigma(x) - t|` (Eq. 7), a drop-in for mmdet's ``GHMC``.

    Per-element weights (e.g. from meta-reweighting) multiply the loss; the histogram counts
    every element of weight > 0 once, whatever its weight.

    Args:
        bins: number of unit regions :math:`M` of :math:`g \in [0, 1]`.
        momentum: moving-average momentum of the bin counts; 0 for none.
        use_sigmoid: must be True (kept because heads read it from the config).
        focal_gamma, focal_alpha: the focal loss the warm-up starts from (Lin et al.'s
            defaults); during the warm-up it is normalised by the head's ``avg_factor``, as a
            focal loss is.
        alpha: focal loss's balance of positive and negative targets in the harmonized loss:
            positives' weights times ``alpha``, negatives' times ``1 - alpha``, all rescaled to
            the same sum. ``None`` (default): the paper's loss.""" + _GHM_ARGS_DOC

    def __init__(self,
                 bins: int = 10,
                 momentum: float = 0.0,
                 use_sigmoid: bool = True,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 num_levels: int = 5,
                 sync_stats: Optional[bool] = None,
                 mmdet_compat: bool = False,
                 warmup_iters: int = 1000,
                 paper_exact: bool = False,
                 restart_statistics: bool = False,
                 focal_gamma: float = 2.0,
                 focal_alpha: Optional[float] = 0.25,
                 alpha: Optional[float] = None,
                 check_values: bool = True,
                 check_finite: bool = False) -> None:
        check_use_sigmoid(use_sigmoid, True, 'GHMC')
        super().__init__(bins, momentum, 1.0 + 1e-6, num_levels, sync_stats, mmdet_compat,
                         warmup_iters, paper_exact, restart_statistics, reduction, loss_weight,
                         check_values, check_finite)
        # now, not mid-training; each error names the argument (focal_alpha and alpha differ)
        check_number(focal_alpha, 'focal_alpha', 0.0, 1.0, none_ok=True)
        check_number(focal_gamma, 'focal_gamma', 0.0)
        check_number(alpha, 'alpha', 0.0, 1.0, none_ok=True)
        self.use_sigmoid = True
        self.focal_gamma = float(focal_gamma)
        self.focal_alpha = focal_alpha
        self.alpha = alpha

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args:
            pred: ``(N, C)`` logits.
            target: ``(N,)`` class indices (``C`` = background) or ``(N, C)`` binary targets.
            weight: ``(N,)``, ``(N, C)`` or ``(N * C,)`` weights; 0 ignores an element.
            avg_factor: accepted for the heads' sake and ignored (see ``reduction``).
            reduction_override: 'none' | 'mean' | 'sum' for this call.
        """
        reduction = resolve_reduction(self.reduction, reduction_override, avg_factor)
        targets, weight = prepare_cls_inputs(pred, target, weight, self.check_values,
                                             self.check_finite)
        logits = upcast(pred)
        share = self.harmonizing_share()
        # computed during the warm-up too, so that the moving averages are warm when it ends
        ghm_weight, tot = self._weights(bce_gradient_norm(logits, targets), weight, logits.shape)
        if self.alpha is not None:
            ghm_weight = self._balance(ghm_weight, targets)
        # the weight inside BCE: one fused backward kernel, nothing else saved for it
        loss = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), ghm_weight,
                                                  reduction='none')
        loss = weight_reduce(loss, None, reduction, tot if reduction == 'mean' else None)
        if share < 1:
            focal = sigmoid_focal_loss(logits, targets, self.focal_alpha, self.focal_gamma)
            focal = weight_reduce(focal, weight, reduction,
                                  avg_factor if reduction == 'mean' else None)
            loss = share * loss + (1 - share) * focal
        return self.loss_weight * loss

    def _balance(self, ghm_weight: Tensor, targets: Tensor) -> Tensor:
        """``alpha``'s balance: positives' weights times alpha, negatives' times 1 - alpha, all
        rescaled so that they sum to what they summed to, over all ranks under DDP."""
        positive = targets if targets.dtype == torch.bool else targets > 0.5
        # in place on one new tensor: the weights are as large as the logits
        balanced = torch.where(positive, self.alpha, 1 - self.alpha).to(ghm_weight.dtype)
        balanced.mul_(ghm_weight)
        sums = torch.stack([ghm_weight.sum(), balanced.sum()]).float()
        if self.sync_stats or (self.sync_stats is None and _distributed()):
            dist.all_reduce(sums)  # the global batch's rescaling, as one process would make it
        scale = torch.where(sums[1] > 0, sums[0] / sums[1].clamp(min=1e-30), 0.0)
        return balanced.mul_(scale.to(balanced.dtype))

    def extra_repr(self) -> str:
        return (f'focal_gamma={self.focal_gamma}, focal_alpha={self.focal_alpha}, '
                f'alpha={self.alpha}, ' + super().extra_repr())


@MODELS.register_module()
class GHMR(_GHMLoss):
    __doc__ = r"""GHM-R: authentic smooth L1 weighted by the harmonizing weights of
    :math:`g = |d| / \sqrt{d^2 + \mu^2}` (Eq. 13), a drop-in for mmdet's ``GHMR``.

    Per-element weights multiply the loss; the histogram counts every element of weight > 0 once
    and ``N`` is their number (mmdet's ``label_weight.sum()``, the same for 0/1 weights).

    Args:
        mu: :math:`\mu` of the authentic smooth L1 loss, or ``'auto'``: the ``mu_quantile``
            quantile of :math:`|d|` over the valid elements, averaged over the training calls
            of the first ``mu_calibration_iters`` iterations, then frozen. It is kept in the
            buffer ``mu_value`` (saved in checkpoints).
        mu_quantile: the quantile of :math:`|d|` that ``'auto'`` uses: at the median, half of
            the calibration's coordinates lie in the linear part of the loss.
        mu_calibration_iters: iterations over which ``'auto'`` averages; the calls themselves
            are counted where no runner reports the iteration.
        mu_momentum: ``None``: ``'auto'`` freezes :math:`\mu` after the calibration. A number
            :math:`m \in [0, 1)`: every later training call moves it on,
            :math:`\mu \leftarrow m \mu + (1 - m) q` with :math:`q` the call's quantile, so
            that :math:`\mu` follows the residuals as the detector sharpens. A frozen
            :math:`\mu` taken from an untrained detector's deltas ends several times the
            trained one's, where the loss is quadratic and the nearly right coordinates get
            little gradient.
        bins: number of unit regions of :math:`g \in [0, 1)`.
        momentum: moving-average momentum of the bin counts; 0 for none.
        drop_ignored: compute only the elements of non-zero ``label_weight`` (a dense head weights
            all but its positive anchors 0: 99.8% of RetinaNet's box targets). Finding them is a
            data-dependent size, i.e. a host sync on an accelerator, so ``None`` (default) drops
            them on the CPU only and keeps the sync-free full-size path elsewhere. Same values
            either way.""" + _GHM_ARGS_DOC

    mmdet_tot_is_weight_sum = True

    #: GHM-R's μ on COCO (the paper's and mmdet's), used by ``paper_exact`` for ``mu='auto'``
    PAPER_MU = 0.02

    def __init__(self,
                 mu: Union[float, str] = 'auto',
                 bins: int = 10,
                 momentum: float = 0.0,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 num_levels: int = 5,
                 sync_stats: Optional[bool] = None,
                 mmdet_compat: bool = False,
                 warmup_iters: int = 1000,
                 paper_exact: bool = False,
                 restart_statistics: bool = False,
                 mu_quantile: float = 0.5,
                 mu_calibration_iters: int = 500,
                 mu_momentum: Optional[float] = None,
                 check_values: bool = True,
                 check_finite: bool = False,
                 drop_ignored: Optional[bool] = None) -> None:
        super().__init__(bins, momentum, 1e3, num_levels, sync_stats, mmdet_compat,
                         warmup_iters, paper_exact, restart_statistics, reduction, loss_weight,
                         check_values, check_finite)
        if mu == 'auto' and self.paper_exact:
            mu = self.PAPER_MU
        self.auto_mu = mu == 'auto'
        if self.auto_mu:
            if not 0 < mu_quantile < 1:
                raise ValueError(f'mu_quantile must be in (0, 1), got {mu_quantile}')
            self.mu_quantile = float(mu_quantile)
            self.mu_calibration_iters = _check_non_negative_int(mu_calibration_iters,
                                                                'mu_calibration_iters')
            if mu_momentum is not None:
                check_number(mu_momentum, 'mu_momentum', 0.0, 1.0, high_open=True)
            self.mu_momentum = None if mu_momentum is None else float(mu_momentum)
            self.register_buffer('mu_value', torch.tensor(float('nan')))
            self.register_buffer('mu_calls', torch.tensor(0, dtype=torch.long))
            self._frozen_mu: Optional[float] = None
        else:
            if isinstance(mu, str) or not math.isfinite(mu) or mu <= 0:
                raise ValueError(f"mu must be a finite number > 0 or 'auto', got {mu!r}")
            if mu_momentum is not None and not self.paper_exact:
                raise ValueError(f"mu_momentum={mu_momentum!r} moves an 'auto' mu; with a fixed "
                                 f"mu={mu!r} leave it None, or set mu='auto'")
            self.mu = float(mu)
        self.drop_ignored = drop_ignored

    def current_mu(self) -> Optional[float]:
        """μ as the next evaluation call uses it; None while ``'auto'`` has not seen a box."""
        if not self.auto_mu:
            return self.mu
        value = float(self.mu_value)
        return value if math.isfinite(value) else None

    def _mu(self, diff: Tensor, weight: Optional[Tensor]) -> Union[float, Tensor]:
        """μ for this call. With ``'auto'``, a training call during the calibration first folds
        its quantile of :math:`|d|` (valid elements only) into the running mean; a call before
        any calibration that may not update (evaluation, a look-ahead) uses its own quantile."""
        if not self.auto_mu:
            return self.mu
        if self._frozen_mu is not None:
            return self._frozen_mu
        calls = int(self.mu_calls)
        iteration = runner_iteration()
        calibrating = calls < self.mu_calibration_iters if iteration is None \
            else iteration < self.mu_calibration_iters
        updating = self.training and self.update_stats
        calibrated = calls > 0 and not calibrating
        if calibrated and self.mu_momentum is None:
            self._frozen_mu = float(self.mu_value)  # one host read, then none
            return self._frozen_mu
        if calls > 0 and not updating:
            return self.mu_value
        quantile, seen = self._quantile(diff, weight)
        if not seen:  # no valid element on any rank: μ changes no loss and no weight
            return self.mu_value if calls > 0 else self.PAPER_MU
        quantile = quantile.clamp(min=1e-6)  # a positive μ keeps g = |d| / sqrt(d² + μ²) defined
        if not updating:
            return quantile
        if calibrated:  # mu_momentum is set: follow the residuals
            self.mu_value.mul_(self.mu_momentum).add_((1 - self.mu_momentum) * quantile)
        else:
            self.mu_value.copy_(quantile if calls == 0 else
                                (self.mu_value * calls + quantile) / (calls + 1))
        self.mu_calls += 1
        return self.mu_value.clone()

    def _quantile(self, diff: Tensor, weight: Optional[Tensor]) -> Tuple[Tensor, bool]:
        """The ``mu_quantile`` quantile of :math:`|d|` over the valid elements (all ranks'
        mean under DDP), and whether any rank had one."""
        magnitude = diff.detach().abs()
        if weight is not None:
            magnitude = magnitude[(weight > 0).expand_as(magnitude)]
        magnitude = magnitude.reshape(-1).float()
        # torch.quantile takes at most 2**24 elements; an even subsample keeps the quantile
        magnitude = magnitude[::magnitude.numel() // 2**24 + 1]
        stats = torch.zeros(2, device=diff.device)
        if magnitude.numel() > 0:
            stats[0], stats[1] = torch.quantile(magnitude, self.mu_quantile), 1.0
        if self.sync_stats or (self.sync_stats is None and _distributed()):
            dist.all_reduce(stats)  # every rank must use the same μ
        seen = bool(stats[1] > 0)
        return stats[0] / stats[1].clamp(min=1), seen

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        if self.auto_mu:
            self._frozen_mu = None  # the loaded mu_value is read again
            # missing (a checkpoint with a fixed mu): calibrated afresh, with a warning
            fit_loaded_statistics(self, state_dict, prefix + 'mu_value', self.restart_statistics)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        if self.auto_mu:
            then = 'frozen' if self.mu_momentum is None else f'momentum {self.mu_momentum}'
            mu = (f"mu='auto' (quantile {self.mu_quantile} over {self.mu_calibration_iters} "
                  f'iters, then {then})')
        else:
            mu = f'mu={self.mu}'
        return f'{mu}, ' + super().extra_repr()

    def forward(self,
                pred: Tensor,
                target: Tensor,
                label_weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args:
            pred: ``(N, 4)`` (or any shape) regression outputs.
            target: regression targets shaped like ``pred``.
            label_weight: weights shaped like ``pred`` or ``(N,)``; 0 ignores an element.
            avg_factor: accepted for the heads' sake and ignored (see ``reduction``).
            reduction_override: 'none' | 'mean' | 'sum' for this call.
        """
        reduction = resolve_reduction(self.reduction, reduction_override, avg_factor)
        if not pred.is_floating_point() or pred.dim() == 0:
            raise ValueError(f'pred must be a floating point tensor with a batch dim, got '
                             f'{pred.dtype} of shape {tuple(pred.shape)}')
        if target.shape != pred.shape:
            raise ValueError(f'target must have the shape of pred {tuple(pred.shape)}, got '
                             f'{tuple(target.shape)}')
        label_weight = broadcast_weight(label_weight, pred.shape)
        check_input_values(pred=pred if self.check_finite else None)
        shape, kept = pred.shape, None
        drop = pred.device.type == 'cpu' if self.drop_ignored is None else self.drop_ignored
        if label_weight is not None and drop:  # see drop_ignored
            label_weight = label_weight.expand(shape).reshape(-1)
            # every non-zero weight, negative and NaN ones too (the value check below sees them)
            kept = label_weight.nonzero().view(-1)
            pred, target, label_weight = pred.reshape(-1)[kept], target.reshape(-1)[kept], \
                label_weight[kept]
        check_input_values(weight=label_weight if self.check_values else None)
        diff = upcast(pred) - upcast(target)
        share = self.harmonizing_share()
        mu = self._mu(diff, label_weight)
        # one square root for the loss (Eq. 11) and the gradient norm (Eq. 12); the same
        # float operations as authentic_smooth_l1 and asl1_gradient_norm, so the same bins
        root = torch.sqrt(diff * diff + mu * mu)
        g = (diff.detach() / root.detach()).abs_()
        # checked kept weights are all > 0: the value check rejected negative and NaN ones
        ghm_weight, tot = self._weights(g, label_weight, diff.shape,
                                        all_positive=kept is not None and self.check_values)
        if share < 1:  # from the unweighted loss (the given weights alone) to the harmonized
            plain = 1.0 if label_weight is None else label_weight.expand_as(ghm_weight)
            ghm_weight = share * ghm_weight + (1 - share) * plain
        loss = weight_reduce(root - mu, ghm_weight, reduction,
                             tot if reduction == 'mean' else None)
        if kept is not None and reduction == 'none':
            loss = loss.new_zeros(shape.numel()).index_put((kept, ), loss).view(shape)
        return self.loss_weight * loss
