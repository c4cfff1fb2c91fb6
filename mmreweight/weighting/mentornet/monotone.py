"""A mentor's weights made non-increasing in the loss (``MentorNetWeighter(monotone=True)``).

Not in the paper. Why: a data-driven mentor is fitted to the losses of the detector whose
checkpoints made its training data (e.g. a focal run on the same noisy data). A detector trained
under the mentor fits the noisy annotations less, so their losses run past the range the mentor
saw, and there the network extrapolates: a fitted mentor can give v ≈ 0.1 just above the
positives' percentile but v ≈ 0.5 again for ℓ ≥ 1, the most obviously wrong labels
(:func:`mentor_rise` measures this on a fitted mentor; ``docs/study/note.md``, item 3). Under
label noise a higher loss should never make a label more trustworthy, so the weighter takes the
mentor's lower envelope in the loss, per group g (negatives, positives)::

    ṽ(ℓ) = min( v(ℓ), min_{k ≥ 0: k·s ≤ ℓ} v(k·s) ),    v(x) = mentor(x, x − λ_g, y_g, e)

with λ_g the group's percentile moving average, e the epoch and s the grid step in loss units: ṽ
never exceeds what the mentor gives any lower loss on the grid, so it is non-increasing at the
grid's resolution (within one step it varies as little as v does). The grid points are fixed
multiples of s, so an anchor's ṽ does not depend on the other anchors of the batch or rank (the
weights stay what one process computes on the concatenated DDP batch).
"""
from typing import Callable, Dict

import torch
from torch import Tensor

from .inputs import NEG, POS, mentor_features

#: at most this many grid points per group (losses past the last one use the envelope up to it)
MAX_GRID_POINTS = 1 << 20


def monotone_envelope(mentor: Callable[[Tensor], Tensor], v: Tensor, loss: Tensor,
                      is_pos: Tensor, thresholds: Tensor, epoch: int, step: float) -> Tensor:
    """(N,) ``v`` lowered to the mentor's envelope ṽ of the module docstring.

    Args:
        mentor: maps (M, 4) MentorNet features ``[ℓ, ℓ − λ, y, e]`` to (M,) weights v.
        v: (N,) the mentor's weights of the anchors (``mentor`` on their own features).
        loss: (N,) the anchors' losses (≥ 0).
        is_pos: (N,) bool, foreground anchors (group POS; the others are group NEG).
        thresholds: (2,) λ per group (index NEG, POS).
        epoch: the MentorNet epoch of the step.
        step: grid step s (> 0), in loss units.
    """
    out = v.clone()
    for group, members in ((NEG, ~is_pos), (POS, is_pos)):
        if not bool(members.any()):
            continue
        group_loss = loss[members].clamp(min=0)
        if not bool(torch.isfinite(group_loss).all()):
            # the grid runs up to the largest loss: NaN or inf has no place on it
            raise ValueError('MentorNet monotone envelope: the per-anchor classification loss '
                             'holds non-finite values (NaN or inf); check the logits')
        n = min(int(torch.floor(group_loss.max() / step)) + 1, MAX_GRID_POINTS)
        grid = torch.arange(n, device=loss.device, dtype=loss.dtype) * step
        grid_is_pos = torch.full_like(grid, group == POS, dtype=torch.bool)
        on_grid = mentor(mentor_features(grid, grid_is_pos, thresholds, epoch))
        envelope = torch.cummin(on_grid.to(v.dtype), 0).values
        below = torch.floor(group_loss / step).long().clamp(0, n - 1)
        out[members] = torch.minimum(v[members], envelope[below])
    return out


def mentor_rise(mentor: Callable[[Tensor], Tensor], features: Tensor, span: float = 3.0,
                points: int = 301) -> Dict[str, float]:
    """How far a mentor's v for positives rises again with the loss: a check of a fitted mentor.

    For every epoch e among ``features`` (M, 4) ``[ℓ, ℓ − λ, y, e]`` that has positives (λ read
    back as ℓ − diff), v is evaluated on ``points`` losses from 0 to ``span`` × the largest
    positive loss there (losses a detector trained under the mentor may reach) and the rise is
    ``max_ℓ (v(ℓ) − min_{ℓ' ≤ ℓ} v(ℓ'))``, 0 for a non-increasing mentor.

    Returns ``rise_pos`` (the largest rise over epochs), ``rise_at_loss`` and ``rise_epoch`` (where
    it is); all 0 when there are no positives.
    """
    out = dict(rise_pos=0.0, rise_at_loss=0.0, rise_epoch=0.0)
    is_pos = features[:, 2] > 0.5
    for epoch in features[is_pos, 3].round().unique().tolist():
        rows = features[is_pos & (features[:, 3].round() == epoch)]
        lam = float((rows[:, 0] - rows[:, 1]).mean())
        grid = torch.linspace(0, span * float(rows[:, 0].max()), points)
        thresholds = torch.tensor([0.0, lam])
        with torch.no_grad():
            v = mentor(mentor_features(grid, torch.ones_like(grid, dtype=torch.bool), thresholds,
                                       int(epoch)))
        rise = v - torch.cummin(v, 0).values
        k = int(rise.argmax())
        if float(rise[k]) > out['rise_pos']:
            out = dict(rise_pos=float(rise[k]), rise_at_loss=float(grid[k]), rise_epoch=epoch)
    return out


__all__ = ['monotone_envelope', 'mentor_rise', 'MAX_GRID_POINTS']
