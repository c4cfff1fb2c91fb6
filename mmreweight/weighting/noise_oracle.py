"""The noise oracle: per-anchor weights from the benchmark's record of which labels were corrupted.

Not a method. Real data does not say which annotations are wrong; the embedded benchmark does
(``gt_instances.noisy``, packed by :class:`~mmreweight.datasets.PackDetInputsWithCleanLabels`).
The oracle gives the weights that L2RW, Meta-Weight-Net and MentorNet try to learn: 0 on every
valid anchor matched to a noisy annotation, 1 on the other valid foreground anchors, scaled to mean
one over the valid foreground anchors of all ranks (as ``normalise='foreground'`` in the learned
weighters); background anchors keep weight 1. What it scores bounds what reweighting the
classification loss can recover of label noise's cost on the same schedule, a bound to report next
to the learned weighters.

``noisy_weight`` (default 0) gives noisy annotations' anchors that weight relative to clean ones
(before the normalisation): a weighter that separates perfectly but keeps some weight on the noise. ``burn_in`` delays the oracle
as MentorNet delays its curriculum (weights 1 while the MentorNet epoch ``⌊100·progress⌋`` is
≤ ``100·burn_in``), which tells how much of a learned weighter's shortfall its unweighted start
explains.
"""
from typing import Optional

from torch import Tensor

from mmreweight.registry import MODELS
from .base import (NOISY_POSITIVE, UNKNOWN_POSITIVE, AnchorLossContext, AnchorWeighter,
                   down_weight_foreground)
from .mentornet.curricula import fraction_to_epoch, progress_to_epoch

MISSING_FLAGS = ('NoiseOracleWeighter needs the noise flag of every annotation: build the train '
                 "pipeline with 'mmreweight.LoadCleanLabels' and "
                 "'mmreweight.PackDetInputsWithCleanLabels' on a dataset whose instances carry "
                 "'noisy' (the embedded benchmark's)")


@MODELS.register_module()
class NoiseOracleWeighter(AnchorWeighter):
    """Weight 0 (or ``noisy_weight``) for anchors of noisy annotations, mean one over the valid
    foreground anchors.

    Args:
        noisy_weight: weight of a noisy annotation's anchors relative to a clean one's, in [0, 1].
        burn_in: weights 1 (the unweighted loss) while ``⌊100·progress⌋ ≤ 100·burn_in``, as
            ``MentorNetWeighter(burn_in=...)``; None (default) weights from the first iteration.

    Raises ``ValueError`` when a positive anchor's annotation has no noise flag: guessing "clean"
    would silently turn the oracle into focal loss.
    """

    def __init__(self, noisy_weight: float = 0.0, burn_in: Optional[float] = None) -> None:
        super().__init__()
        if not 0.0 <= float(noisy_weight) <= 1.0:
            raise ValueError(f'noisy_weight must be in [0, 1], got {noisy_weight!r}')
        self.noisy_weight = float(noisy_weight)
        if burn_in is not None and not 0.0 <= float(burn_in) <= 1.0:
            raise ValueError(f'burn_in must be in [0, 1] (a fraction of training), got {burn_in!r}')
        self.burn_in_epoch = None if burn_in is None else fraction_to_epoch(burn_in)

    def forward(self, ctx: AnchorLossContext) -> Tensor:
        flags = ctx.extras.get('gt_noisy')
        if flags is None:
            raise ValueError(f'{MISSING_FLAGS}; the head passed no gt_noisy (use '
                             'mmreweight.ReweightRetinaHead).')
        valid = ctx.valid
        if bool((valid & (flags == UNKNOWN_POSITIVE)).any()):
            raise ValueError(f'{MISSING_FLAGS}; this batch has positive anchors without one.')
        if self.burn_in_epoch is not None and progress_to_epoch(
                min(max(float(ctx.progress), 0.0), 1.0)) <= self.burn_in_epoch:
            self._noisy = 0
            return valid.to(ctx.loss.dtype)
        noisy = flags == NOISY_POSITIVE
        self._noisy = int((noisy & valid & ctx.foreground).sum())
        return down_weight_foreground(ctx, noisy, self.noisy_weight)

    def log_scalars(self):
        """How many valid foreground anchors of the last batch were down-weighted as noisy."""
        return dict(noise_oracle_noisy_anchors=float(getattr(self, '_noisy', 0)))


__all__ = ['NoiseOracleWeighter']
