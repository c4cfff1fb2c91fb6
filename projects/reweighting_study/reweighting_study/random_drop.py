"""A control for L2RW: positive anchors dropped at random, at the share L2RW drops.

L2RW (``configs/retinanet_l2rw.py``) gives weight 0 to about half the positive anchors of every
batch, the ones whose loss gradient points away from the clean batch's, and scales the rest to
mean one; with them it drops every anchor of some annotations, and its zeros cluster by class and
anchor shape within a batch, as an anchor's alignment with the clean gradient uses only its own
class and shape's output channels. :class:`RandomPositiveDropWeighter` drops a share of the valid
foreground anchors uniformly at random (or, ``per='annotation'``, of the annotations, with all
their anchors; ``per='cell'``, of the batch's (class, anchor shape) cells, with all their
anchors) and scales the rest the same way (background anchors keep weight 1). Trained side by
side with L2RW and focal loss, it tells whether dropping positives by itself explains a gap
between them, or which positives L2RW drops does.

Registered into mmreweight's registry; a config loads it with
``custom_imports = dict(imports=['projects.reweighting_study.reweighting_study.random_drop'])``
(the repository root on ``sys.path``, as ``tools/train.py`` puts it).
"""
from typing import Dict, Optional, Tuple

import torch
from mmengine.dist import get_rank
from torch import Tensor

from mmreweight.analysis.diagnostics import anchor_priors
from mmreweight.registry import MODELS
from mmreweight.weighting.base import (AnchorLossContext, AnchorWeighter, annotation_index,
                                       down_weight_foreground)


@MODELS.register_module()
class RandomPositiveDropWeighter(AnchorWeighter):
    """Weight 0 on a random ``drop_rate`` share of the valid foreground anchors (or of the
    annotations or of the batch's (class, anchor shape) cells, with their anchors), mean one
    over the valid foreground anchors.

    Args:
        drop_rate: probability that a valid foreground anchor (``per='anchor'``), an
            annotation with every anchor assigned to it (``per='annotation'``) or a (class,
            anchor shape) cell of the batch with every foreground anchor in it (``per='cell'``)
            is dropped, in [0, 1).
        per: ``'anchor'``, ``'annotation'`` or ``'cell'``: L2RW drops anchors, and with them
            every anchor of some annotations and of some (class, shape) cells; the other two test
            whether dropping whole annotations or whole cells is what counts.
        seed: seed of the masks; None (default) takes ``torch.initial_seed()`` when built, which
            is the run's ``randomness.seed`` once mmengine's runner has set it.

    Each batch's mask is drawn from a generator seeded with (seed, rank, training progress), so a
    resumed run draws the masks an uninterrupted one would, and the masks use none of the global
    random stream the rest of training draws from.
    """

    UNITS = ('anchor', 'annotation', 'cell')

    def __init__(self, drop_rate: float, per: str = 'anchor', seed: Optional[int] = None) -> None:
        super().__init__()
        if not 0.0 <= float(drop_rate) < 1.0:
            raise ValueError(f'drop_rate must be in [0, 1) (1 would drop every positive), '
                             f'got {drop_rate!r}')
        if per not in self.UNITS:
            raise ValueError(f"per must be one of {', '.join(map(repr, self.UNITS))}, "
                             f'got {per!r}')
        self.drop_rate = float(drop_rate)
        self.per = per
        self.seed = torch.initial_seed() if seed is None else int(seed)
        self._dropped = 0.0

    def batch_seed(self, progress: float) -> int:
        """The mask generator's seed for the batch at ``progress`` on this rank. Python hashes
        tuples of numbers the same in every process (only str and bytes hashes are salted)."""
        return hash((self.seed, get_rank(), float(progress))) & 0x7FFF_FFFF_FFFF_FFFF

    def groups(self, ctx: AnchorLossContext) -> Tuple[Tensor, int]:
        """(N,) the unit each anchor is dropped with (-1: none) and the number of units."""
        if self.per == 'annotation':
            index = annotation_index(ctx).cpu()
            return index, int(index.max()) + 1 if index.numel() else 0
        head, feats = ctx.extras.get('head'), ctx.extras.get('cls_feats')
        if head is None or not feats:
            raise ValueError("per='cell' needs the head and its per-level classification "
                             "features in the context's extras (as mmreweight.ReweightRetinaHead "
                             'provides)')
        priors = anchor_priors([f.shape for f in feats], head.num_base_priors)
        if priors.numel() != ctx.labels.numel():
            raise ValueError(f"per='cell': the features give {priors.numel()} anchors, the "
                             f'labels {ctx.labels.numel()}')
        cell = ctx.labels.cpu() * head.num_base_priors + priors
        return cell.masked_fill(~ctx.foreground.cpu(), -1), ctx.num_classes * head.num_base_priors

    def forward(self, ctx: AnchorLossContext) -> Tensor:
        generator = torch.Generator().manual_seed(self.batch_seed(ctx.progress))
        if self.per == 'anchor':
            drop = torch.rand(ctx.labels.shape, generator=generator) < self.drop_rate
        else:  # one draw per annotation or cell of the batch, shared by its anchors
            group, count = self.groups(ctx)
            dropped = torch.rand(count, generator=generator) < self.drop_rate
            drop = (group >= 0) & dropped[group.clamp(min=0)]
        drop = drop.to(ctx.labels.device)
        weighted = ctx.valid & ctx.foreground
        count = int(weighted.sum())
        self._dropped = float((drop & weighted).sum()) / count if count else float('nan')
        return down_weight_foreground(ctx, drop, 0.0)

    def log_scalars(self) -> Dict[str, float]:
        """The share of the last batch's valid foreground anchors that got weight 0."""
        return dict(random_drop_frac=self._dropped)

    def extra_repr(self) -> str:
        return f'drop_rate={self.drop_rate}, per={self.per!r}, seed={self.seed}'


__all__ = ['RandomPositiveDropWeighter']
