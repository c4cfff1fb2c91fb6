"""The contract between a reweighting head and whatever produces per-anchor weights."""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

#: Values of the per-anchor ``extras['gt_noisy']`` flag the head passes: not a positive anchor, a
#: positive matched to a clean / noisy annotation, or to one without a noise flag.
NOT_POSITIVE, CLEAN_POSITIVE, NOISY_POSITIVE, UNKNOWN_POSITIVE = -1, 0, 1, 2


@dataclass
class AnchorLossContext:
    """Everything a weighter may look at for one training batch, all levels flattened.

    Attributes:
        loss: (N,) per-anchor classification loss (summed over classes), still attached to the
            graph. Weighters must not backpropagate the training loss through it.
        logits: (N, C) classification logits (attached to the graph).
        labels: (N,) class index per anchor, ``num_classes`` for background.
        label_weights: (N,) the head's own anchor weights (0 = ignored anchor).
        num_classes: number of foreground classes.
        avg_factor: the head's normaliser of the classification loss (number of positives).
        progress: training progress in [0, 1] (iteration / max iterations).
        extras: method-specific inputs (e.g. the head, its classification features, true labels).
    """
    loss: Tensor
    logits: Tensor
    labels: Tensor
    label_weights: Tensor
    num_classes: int
    avg_factor: float
    progress: float = 0.0
    extras: Dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> Tensor:
        """(N,) bool mask of anchors that count in the loss."""
        return self.label_weights > 0

    @property
    def foreground(self) -> Tensor:
        """(N,) bool mask of anchors assigned to a foreground class (valid or not)."""
        return (self.labels >= 0) & (self.labels < self.num_classes)


class AnchorWeighter(nn.Module):
    """Base class of per-anchor weight producers (L2RW, Meta-Weight-Net, MentorNet).

    ``forward`` returns detached (N,) weights, zero on ignored anchors. Convention: weights are
    normalised to mean 1 over valid anchors, so uniform weights reproduce the unweighted loss and
    the head's ``avg_factor`` normalisation applies unchanged.
    """

    #: whether the weighter needs a batch from the clean (meta) subset each meta step
    needs_clean_batch: bool = False

    def forward(self, ctx: AnchorLossContext) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def normalise_mean_one(raw: Tensor, valid: Tensor) -> Tensor:
        """Non-negative ``raw`` scaled to mean one over the ``valid`` anchors (of all DDP ranks),
        zero elsewhere; all-zero weights stay zero (:func:`mean_one_over_ranks`)."""
        return mean_one_over_ranks(torch.where(valid, raw, torch.zeros_like(raw)), valid)

    def log_scalars(self) -> Dict[str, float]:
        """Scalars worth logging after the last call (overridden by weighters that track any)."""
        return {}


def maybe_all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over DDP ranks (in place) when a process group is up; a no-op otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(tensor)
    return tensor


def global_count_and_sum(raw: Tensor, valid_count: int) -> Tuple[Tensor, Tensor]:
    """(number of valid anchors, sum of ``raw``) over all ranks, detached (one collective)."""
    stats = torch.stack([raw.new_tensor(float(valid_count)), raw.detach().sum()])
    maybe_all_reduce_sum(stats)
    return stats[0], stats[1]


def mean_one_over_ranks(v: Tensor, weighted: Optional[Tensor] = None) -> Tensor:
    """``v`` scaled to mean one over its ``weighted`` entries (every entry when ``None``) on all
    DDP ranks; the other entries as they are.

    Each rank produces the weights one process would on the concatenated batch (one collective,
    made on every rank even when it has no weighted entry). The count and sum are detached: a
    caller differentiating through ``v`` gets ``(N / S) dv``. All-zero ``v`` on the
    weighted entries stays zero (the normaliser is ``S + [S = 0]``, as in L2RW's reference).
    """
    selected = v if weighted is None else v[weighted]
    count, total = global_count_and_sum(selected, selected.numel())
    scaled = v * count / (total + (total == 0).to(v.dtype))
    return scaled if weighted is None else torch.where(weighted, scaled, v)


class MissingAnnotationIndex(TypeError, ValueError):
    """A per-annotation weighter got anchors without the annotation each is assigned to (a
    ``TypeError`` for the batch's targets, a ``ValueError`` for the input)."""


def annotation_index(ctx: AnchorLossContext) -> Tensor:
    """(N,) the annotation each anchor is assigned to, numbered through the batch, -1 for none
    (``FlatTargets.gt_index`` in ``ctx.extras['targets']``)."""
    index = getattr(ctx.extras.get('targets'), 'gt_index', None)
    if index is None:
        raise MissingAnnotationIndex("per='annotation' needs the annotation of every positive "
                                     'anchor (FlatTargets.gt_index, as '
                                     'mmreweight.ReweightRetinaHead provides).')
    return index


def down_weight_foreground(ctx: AnchorLossContext, mask: Tensor, weight: float = 0.0) -> Tensor:
    """Detached weights: ``weight`` on the valid foreground anchors in ``mask``, 1 on the other
    valid ones (0 on ignored anchors), scaled to mean one over the valid foreground anchors of all
    ranks; background anchors keep weight 1."""
    valid = ctx.valid
    weighted = valid & ctx.foreground
    v = valid.to(ctx.loss.dtype).masked_fill(weighted & mask, weight)
    return mean_one_over_ranks(v, weighted).detach()


__all__ = ['NOT_POSITIVE', 'CLEAN_POSITIVE', 'NOISY_POSITIVE', 'UNKNOWN_POSITIVE',
           'AnchorLossContext', 'AnchorWeighter', 'maybe_all_reduce_sum', 'global_count_and_sum',
           'mean_one_over_ranks', 'MissingAnnotationIndex', 'annotation_index',
           'down_weight_foreground']
