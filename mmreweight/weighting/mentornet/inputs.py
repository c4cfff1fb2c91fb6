"""MentorNet's per-anchor inputs: the percentile-loss moving average and the feature tensor.

Detection adaptation (why positives and negatives are tracked separately):
a RetinaNet batch has ~10⁵ valid anchors of which a few hundred are positives. Easy negatives
have near-zero loss, so one percentile over all valid anchors would sit at an easy-negative loss
and every positive would get ``diff > 0`` — self-paced learning would then drop all of them. We
keep one percentile per group (negatives = background, positives = foreground) and each anchor's
``diff`` is taken against its own group. Within a group we use *all* valid anchors (no sampling):
the percentile is then exact and deterministic, it is a linear-time selection, and under DDP the
gathered tensor (two floats per anchor) is a few MB, well under a ResNet's gradient all-reduce.

Under DDP the losses of all ranks are gathered (``all_gather``, padded to the largest rank), so
the percentile — and the moving average — equal those of one process on the concatenated batch.
"""
import math
from typing import List

import torch
from torch import Tensor, nn

#: group indices into the per-group buffers
NEG, POS = 0, 1


def percentile_linear(values: Tensor, q: float) -> Tensor:
    """The ``q``-quantile of a 1-D tensor with linear interpolation (``numpy.percentile(x, 100q)``).

    With sorted values ``x_(0) ≤ … ≤ x_(n−1)`` and ``h = q·(n − 1)``::

        P_q = x_(⌊h⌋) + (h − ⌊h⌋)·(x_(⌊h⌋+1) − x_(⌊h⌋))

    Uses two ``kthvalue`` selections rather than ``torch.quantile``, which refuses more than
    2²⁴ elements (8 GPUs × 16 images × 10⁵ anchors is near that).
    """
    if values.numel() == 0:
        raise ValueError('percentile of an empty tensor')
    values = values.reshape(-1).float()
    h = q * (values.numel() - 1)
    lo = int(math.floor(h))
    hi = min(lo + 1, values.numel() - 1)
    x_lo = torch.kthvalue(values, lo + 1).values  # kthvalue is 1-based
    x_hi = torch.kthvalue(values, hi + 1).values if hi != lo else x_lo
    return x_lo + (h - lo) * (x_hi - x_lo)


def all_gather_rows(rows: Tensor) -> Tensor:
    """Concatenate the (K, n_r) tensors of all DDP ranks along dim 1 (identity without DDP).

    Ranks may hold different ``n_r``: sizes are exchanged first and rows padded to the largest.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return rows
    world = torch.distributed.get_world_size()
    if world == 1:
        return rows
    size = torch.tensor([rows.shape[1]], device=rows.device, dtype=torch.long)
    sizes: List[Tensor] = [torch.zeros_like(size) for _ in range(world)]
    torch.distributed.all_gather(sizes, size)
    n_max = int(max(int(s) for s in sizes))
    padded = rows.new_zeros(rows.shape[0], n_max)
    padded[:, :rows.shape[1]] = rows
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    torch.distributed.all_gather(gathered, padded.contiguous())
    return torch.cat([g[:, :int(s)] for g, s in zip(gathered, sizes)], dim=1)


class PercentileEMA(nn.Module):
    """Per-group moving average λ_g of the p-th percentile loss.

    Update (one per counted training step, for each group g with at least one anchor)::

        P_g,t = percentile_p({ℓ_i : anchor i valid and in group g})     (over all DDP ranks)
        λ_g,t = P_g,t                          on the first update of group g
        λ_g,t = d·λ_g,t−1 + (1 − d)·P_g,t      afterwards          (d = ``decay``, 0.5)

    The reference starts λ at 0 and applies the recursion from the first step; we start from the
    first percentile instead, so early thresholds are not biased towards 0 (with self-paced
    weights a threshold of 0 would drop almost every anchor).

    State lives in buffers (``value``, ``initialised``), so ``state_dict`` checkpoints it.
    """

    def __init__(self, percentile: float = 0.7, decay: float = 0.5) -> None:
        super().__init__()
        if not 0.0 < percentile < 1.0:
            raise ValueError(f'percentile must be in (0, 1), got {percentile}')
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'ema decay must be in [0, 1), got {decay}')
        self.percentile = float(percentile)
        self.decay = float(decay)
        self.register_buffer('value', torch.zeros(2))
        self.register_buffer('initialised', torch.zeros(2, dtype=torch.bool))

    def batch_percentiles(self, loss: Tensor, is_pos: Tensor, valid: Tensor) -> Tensor:
        """(2,) percentile per group over the valid anchors of all ranks; NaN for an empty group.

        A collective under DDP: every rank must call it, whatever its local anchors.
        """
        rows = torch.stack([loss[valid].float(), is_pos[valid].float()])
        loss_all, pos_all = all_gather_rows(rows)
        out = torch.full((2,), float('nan'), device=loss.device)
        for group, mask in ((NEG, pos_all == 0), (POS, pos_all == 1)):
            if mask.any():
                out[group] = percentile_linear(loss_all[mask], self.percentile)
        return out

    @torch.no_grad()
    def update(self, batch_pct: Tensor) -> None:
        """Fold the (2,) batch percentiles into the moving average; NaN groups are left alone."""
        present = ~torch.isnan(batch_pct)
        blended = self.decay * self.value + (1 - self.decay) * batch_pct
        new = torch.where(self.initialised, blended, batch_pct)
        self.value.copy_(torch.where(present, new, self.value))
        self.initialised |= present

    def thresholds(self, batch_pct: Tensor) -> Tensor:
        """(2,) λ to subtract: the moving average, or this batch's percentile where it has none."""
        fallback = torch.nan_to_num(batch_pct, nan=0.0)
        return torch.where(self.initialised, self.value, fallback)


def mentor_features(loss: Tensor, is_pos: Tensor, thresholds: Tensor, epoch: int) -> Tensor:
    """(N, 4) MentorNet inputs ``[ℓ, ℓ − λ_group, y, e]`` with y = 1 for foreground anchors."""
    y = is_pos.to(loss.dtype)
    diff = loss - thresholds.to(loss.dtype)[is_pos.long()]
    e = torch.full_like(loss, float(epoch))
    return torch.stack([loss, diff, y, e], dim=1)


__all__ = ['NEG', 'POS', 'percentile_linear', 'all_gather_rows', 'PercentileEMA',
           'mentor_features']
