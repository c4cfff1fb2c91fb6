"""MentorNet per-anchor weights for a dense detector's classification loss (Jiang et al., 2018).

Per training step, for every valid anchor i (label weight > 0):

1. inputs ``x_i = [ℓ_i, ℓ_i − λ_g(i), y_i, e]`` (:mod:`.inputs`): ℓ the per-anchor loss,
   λ_g the moving average of the p-th percentile loss of the anchor's group g (negatives or
   positives), y_i = 1 for foreground anchors, e = min(⌊100·progress⌋, 99);
2. ``v_i = mentor(x_i)``: a closed-form curriculum (:mod:`.curricula`) or a MentorNet
   network (:mod:`.net`; fitted to a curriculum, or data-driven from a file);
   (optional, not in the paper) ``monotone``: v made non-increasing in the loss
   (:mod:`.monotone`); ``threshold``: ``v_i ← 1[v_i ≥ threshold]``;
3. burn-in: ``v_i = 1`` while ``e ≤ 100·burn_in`` (the reference's ``max(v, 1[burn-in])``);
4. example dropout (optional): a random fraction ``example_dropout`` of the valid anchors gets
   ``v_i = 0``;
5. mean one over valid anchors of *all* ranks: ``w_i = v_i · N / Σ_j v_j`` with N and Σ
   all-reduced, so each rank produces the weights one process would on the concatenated batch
   (as the project's L2RW / Meta-Weight-Net weighters do). All-zero v gives all-zero w.

With ``normalise='foreground'`` steps 2–5 apply to the valid foreground anchors only (mean one over
them) and background anchors keep weight 1, as ``L2RWWeighter(normalise='foreground')``: label noise
lives in the annotations, while a percentile curriculum over the background drops its hardest 30%,
i.e. the hard negatives a detector needs (``docs/study/note.md``, item 4).

The label input is a positive/negative flag rather than the class index: the reference's label
embedding has two rows, and a class-free mentor transfers between datasets.

State (checkpointed through ``state_dict``): the percentile moving average (``pct_ema.value``,
``pct_ema.initialised``) and the mentor network's parameters and buffers when a network is used.
The moving average is updated only in training mode and when ``ctx.extras.get('update_state',
True)`` is true (a hook sets it False on steps that must not count; under DDP it must agree on
all ranks, as the update is a collective); otherwise λ is read only.
"""
import warnings
from typing import Dict, Optional

import torch
from torch import Tensor

from mmreweight.registry import MODELS
from ..base import AnchorLossContext, AnchorWeighter, mean_one_over_ranks
from .curricula import PREDEFINED, fraction_to_epoch, make_curriculum, progress_to_epoch
from .dd import load_mentor
from .inputs import NEG, POS, PercentileEMA, mentor_features
from .monotone import monotone_envelope
from .net import fit_to_curriculum

CURRICULA = PREDEFINED + ('dd',)
NORMALISATIONS = ('mean_one', 'foreground')
#: curricula whose weights rise with the loss: a monotone (non-increasing) envelope would undo them
RISING_CURRICULA = ('hem', 'focal')

#: a weight below this counts as "zero" in the logged fraction (the reference's data-utilisation
#: epsilon; network mentors output σ(·) > 0, never exactly 0)
ZERO_EPS = 1e-3


def _check_fraction(name: str, value: Optional[float], allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f'{name} must be in [0, 1] (a fraction of training), got {value!r}')


@MODELS.register_module()
class MentorNetWeighter(AnchorWeighter):
    """Per-anchor MentorNet weights (see the module docstring for the computation).

    Args:
        curriculum: ``'pd'`` (MentorNet-PD schedule, the default), ``'self_paced'``, ``'hem'``,
            ``'focal'``, ``'spcl_linear'`` or ``'dd'`` (data-driven mentor from
            ``mentor_checkpoint``).
        mentor: alias of ``curriculum`` (``mentor='dd'``); give one or the other.
        percentile: p of the percentile loss, in (0, 1). Reference: 0.7.
        ema: decay d of the percentile moving average, in [0, 1). Reference: 0.5.
        burn_in: v = 1 while epoch ≤ 100·burn_in (reference: epoch ≤ 18); None disables.
            Also PD's burn-in boundary.
        spcl_from: PD switches from self-paced to SPCL-linear at epoch ≥ 100·spcl_from (0.9).
        spcl_gamma: γ of SPCL-linear, in loss units (reference 1).
        focal_gamma: γ of the focal curriculum (2).
        example_dropout: fraction of the weighted anchors whose weight is zeroed at random, in
            [0, 1).
        mentor_checkpoint: a mentor file (:func:`.dd.save_mentor`): required for
            ``'dd'``; for a predefined curriculum, a network fitted to it replaces the closed form.
        fit_network: for a predefined curriculum, fit a MentorNet network to it on the synthetic
            grid at construction (the paper's MentorNet-PD) and use it instead of the closed form.
        fit_steps: optimiser steps of that fit (its held-out metrics are in ``fit_metrics``).
        input_scale: overrides the network's factor on (ℓ, diff) (see :class:`MentorNetwork`).
        normalise: ``'mean_one'`` (default; every valid anchor, the paper's examples) or
            ``'foreground'`` (the curriculum weights the valid foreground anchors, mean one over
            them; background anchors keep weight 1).
        threshold: if given, the mentor's v becomes ``1[v ≥ threshold]`` (before burn-in and
            dropout). Not in the paper: a data-driven mentor's v estimates P(clean), so t = 0.5
            is its own decision (the study's ``mentornet_dd_hard`` variant measures it; see
            ``docs/study/note.md``). None (default) keeps v soft.
        monotone: make v non-increasing in the loss (the mentor's lower envelope,
            :mod:`.monotone`) before ``threshold``. Not in the paper: it stops a
            data-driven mentor from trusting losses above the range it was fitted on (see
            configs/retinanet_mentornet_dd_monotone.py). Refused for the rising 'hem' and 'focal'
            curricula.
        monotone_step: grid step of that envelope, in loss units (> 0).
    """

    needs_clean_batch = False

    def __init__(self, curriculum: Optional[str] = None, percentile: float = 0.7, ema: float = 0.5,
                 burn_in: Optional[float] = 0.18, spcl_from: float = 0.9,
                 spcl_gamma: float = 1.0, focal_gamma: float = 2.0,
                 example_dropout: float = 0.0, mentor_checkpoint: Optional[str] = None,
                 fit_network: bool = False, fit_steps: int = 3000,
                 input_scale: Optional[float] = None, mentor: Optional[str] = None,
                 normalise: str = 'mean_one', threshold: Optional[float] = None,
                 monotone: bool = False, monotone_step: float = 0.01) -> None:
        super().__init__()
        if not float(monotone_step) > 0:
            raise ValueError(f'monotone_step must be > 0 (loss units), got {monotone_step!r}')
        self.monotone, self.monotone_step = bool(monotone), float(monotone_step)
        if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f'threshold must be in [0, 1] (a weight v), got {threshold!r}')
        self.threshold = None if threshold is None else float(threshold)
        if normalise not in NORMALISATIONS:
            raise ValueError(f'normalise must be one of {NORMALISATIONS}, got {normalise!r}')
        self.normalise = normalise
        if mentor is not None and curriculum is not None and mentor != curriculum:
            raise ValueError(f'curriculum={curriculum!r} and mentor={mentor!r} disagree; '
                             'give one of them')
        curriculum = curriculum or mentor or 'pd'
        if curriculum not in CURRICULA:
            raise ValueError(f'unknown MentorNet curriculum {curriculum!r}; expected one of '
                             f'{", ".join(CURRICULA)}')
        if self.monotone and curriculum in RISING_CURRICULA:
            raise ValueError(f'monotone=True makes weights non-increasing in the loss, which '
                             f'undoes the {curriculum!r} curriculum (its weights rise with it)')
        _check_fraction('burn_in', burn_in, allow_none=True)
        _check_fraction('spcl_from', spcl_from)
        if not 0.0 <= example_dropout < 1.0:
            raise ValueError(f'example_dropout must be in [0, 1), got {example_dropout}')
        self.curriculum = curriculum
        self.pct_ema = PercentileEMA(percentile, ema)  # validates percentile and ema
        self.burn_in_epoch = None if burn_in is None else fraction_to_epoch(burn_in)
        self.example_dropout = float(example_dropout)
        self.progress = 0.0  # set by the hook; the head passes it as ctx.progress
        self._scalars: Dict[str, float] = {}

        self.closed_form = None
        self.mentor_net = None
        self.fit_metrics: Dict[str, float] = {}
        if curriculum != 'dd':
            # PD's own burn-in is the weighter's; without one it never forces 1 (epoch ≥ 0 > −1).
            self.closed_form = make_curriculum(
                curriculum, burn_in_epoch=-1 if burn_in is None else self.burn_in_epoch,
                spcl_epoch=fraction_to_epoch(spcl_from), spcl_gamma=spcl_gamma,
                focal_gamma=focal_gamma)
        if mentor_checkpoint is not None:
            if fit_network:
                raise ValueError('give mentor_checkpoint or fit_network, not both')
            net, fitted_to, meta = load_mentor(mentor_checkpoint)
            if fitted_to != curriculum:
                raise ValueError(f'{mentor_checkpoint!r} holds a {fitted_to!r} mentor, but '
                                 f'curriculum={curriculum!r}')
            if 'percentile' in meta and abs(float(meta['percentile']) - percentile) > 1e-9:
                warnings.warn(f'mentor {mentor_checkpoint!r} was trained with percentile '
                              f'{meta["percentile"]}, the weighter uses {percentile}')
            self.mentor_net = net
        elif curriculum == 'dd':
            raise ValueError("curriculum 'dd' needs mentor_checkpoint=<file written by "
                             "tools/train_mentornet_dd.py>")
        elif fit_network:
            self.mentor_net, self.fit_metrics = fit_to_curriculum(self.closed_form,
                                                                  steps=fit_steps)
        if input_scale is not None and self.mentor_net is None:
            raise ValueError('input_scale applies to a mentor network; the closed-form '
                             f'{curriculum!r} curriculum has none')
        if self.mentor_net is not None:
            self.mentor_net.requires_grad_(False)  # the mentor is fixed while the detector trains
            if input_scale is not None:
                self.mentor_net.input_scale.fill_(float(input_scale))

    # ------------------------------------------------------------------ weights
    def mentor_weights(self, ctx: AnchorLossContext) -> Tensor:
        """(N,) unnormalised v (steps 1–4 of the module docstring), 0 on ignored anchors.

        Updates the percentile moving average when the step counts (a collective under DDP).
        """
        loss = ctx.loss.detach().float()
        if self.pct_ema.value.device != loss.device:
            self.to(loss.device)  # the weighter is not part of the detector, so follow the loss
        valid = ctx.valid
        is_pos = ctx.foreground
        update = self.training and bool(ctx.extras.get('update_state', True))
        batch_pct = torch.full((2,), float('nan'), device=loss.device)
        if update or not bool(self.pct_ema.initialised.all()):
            batch_pct = self.pct_ema.batch_percentiles(loss, is_pos, valid)
        if update:
            self.pct_ema.update(batch_pct)
        thresholds = self.pct_ema.thresholds(batch_pct)
        epoch = progress_to_epoch(min(max(float(ctx.progress), 0.0), 1.0))

        feats = mentor_features(loss, is_pos, thresholds, epoch)
        with torch.no_grad():
            v = self.mentor_v(feats)
            if self.monotone:
                raw = v
                v = monotone_envelope(self.mentor_v, v, loss, is_pos, thresholds, epoch,
                                      self.monotone_step)
                lowered = (raw - v)[self._weighted(ctx)] > ZERO_EPS
                self._scalars['mentornet_monotone_lowered'] = (
                    float(lowered.float().mean()) if lowered.numel() else 0.0)
        if self.threshold is not None:
            v = (v >= self.threshold).to(v.dtype)
        if self.burn_in_epoch is not None and epoch <= self.burn_in_epoch:
            v = torch.ones_like(v)
        weighted = self._weighted(ctx)
        v = torch.where(weighted, v, valid.to(v.dtype))  # 1 on unweighted valid anchors
        if self.example_dropout > 0:
            idx = weighted.nonzero().squeeze(1)
            drop = idx[torch.randperm(len(idx), device=idx.device)
                       [:int(self.example_dropout * len(idx))]]
            v[drop] = 0

        self._log(v, valid, epoch)
        return v

    def mentor_v(self, feats: Tensor) -> Tensor:
        """(M,) the mentor's v for (M, 4) features ``[ℓ, ℓ − λ, y, e]`` (network or closed form)."""
        if self.mentor_net is not None:
            return self.mentor_net.weights(feats)
        return self.closed_form(feats[:, 0], feats[:, 1], feats[:, 2], feats[:, 3])

    def _weighted(self, ctx: AnchorLossContext) -> Tensor:
        """(N,) bool: the anchors the curriculum weights (the other valid ones keep weight 1)."""
        if self.normalise == 'foreground':
            return ctx.valid & ctx.foreground
        return ctx.valid

    def forward(self, ctx: AnchorLossContext) -> Tensor:
        v = self.mentor_weights(ctx)
        weights = mean_one_over_ranks(v, self._weighted(ctx))
        return weights.detach().to(ctx.loss.dtype)

    # ------------------------------------------------------------------ logging
    def _log(self, v: Tensor, valid: Tensor, epoch: int) -> None:
        vv = v[valid]
        self._scalars.update(
            mentornet_pct_ema_neg=float(self.pct_ema.value[NEG]),
            mentornet_pct_ema_pos=float(self.pct_ema.value[POS]),
            mentornet_zero_frac=float((vv < ZERO_EPS).float().mean()) if vv.numel() else 0.0,
            mentornet_mean_v=float(vv.mean()) if vv.numel() else 0.0,
            mentornet_epoch=float(epoch))

    def log_scalars(self) -> Dict[str, float]:
        """Percentile moving averages (negatives, positives), fraction of valid anchors with
        v < 10⁻³, mean v over valid anchors (data utilisation) and the MentorNet epoch; with
        ``monotone``, the fraction of weighted anchors whose v the envelope lowered by > 10⁻³."""
        return dict(self._scalars)

    def extra_repr(self) -> str:
        return (f'curriculum={self.curriculum!r}, normalise={self.normalise!r}, '
                f'threshold={self.threshold}, monotone={self.monotone}, '
                f'percentile={self.pct_ema.percentile}, ema={self.pct_ema.decay}, '
                f'burn_in_epoch={self.burn_in_epoch}, '
                f'network={self.mentor_net is not None}')


__all__ = ['MentorNetWeighter', 'CURRICULA']
