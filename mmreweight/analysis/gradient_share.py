"""Where a classification loss puts its gradient: the share of the summed logit-gradient
magnitude :math:`\\sum |\\partial L / \\partial x|` on positive and on negative targets of each FPN
level, with the loss called level by level (as mmdet's anchor heads call it) or once over all
levels (``JointLevelRetinaHead``).

For a loss summed over elements and divided by the number of positives (focal loss) both calls
give the same shares; for GHM-C, whose weights come from a histogram of the call, they differ.
"""
from typing import Dict, List, Sequence

import torch
from torch import Tensor, nn


def classification_gradient_share(loss: nn.Module, logits: Sequence[Tensor],
                                  labels: Sequence[Tensor], label_weights: Sequence[Tensor],
                                  avg_factor: float, joint: bool) -> Dict[str, List[float]]:
    """Shares of ``loss``'s logit gradient per level and target kind.

    Args:
        loss: a classification loss called as ``loss(logits, labels, label_weights,
            avg_factor=...)`` with class-index labels (``C`` = background).
        logits, labels, label_weights: per level, ``(n_l, C)``, ``(n_l,)`` and ``(n_l,)``.
        avg_factor: the head's normaliser (the number of positives).
        joint: one call over the levels concatenated, else one call per level.

    Returns:
        ``positive`` and ``negative``: per level, the share of the total gradient magnitude on
        the positive targets (an anchor's own class) and on every other element; they sum to 1.
        ``positives``: per level, the number of positive targets. ``total``: the gradient
        magnitude itself.
    """
    inputs = [x.detach().clone().requires_grad_(True) for x in logits]
    with torch.enable_grad():
        if joint:
            value = loss(torch.cat(inputs), torch.cat(list(labels)), torch.cat(list(label_weights)),
                         avg_factor=avg_factor)
        else:
            value = sum(loss(x, y, w, avg_factor=avg_factor)
                        for x, y, w in zip(inputs, labels, label_weights))
        grads = torch.autograd.grad(value, inputs)
    positive, negative, counts = [], [], []
    for grad, y in zip(grads, labels):
        magnitude = grad.abs()
        rows = (y < grad.shape[1]).nonzero().view(-1)
        on_positive = magnitude[rows, y[rows]].sum()
        positive.append(float(on_positive))
        negative.append(float(magnitude.sum() - on_positive))
        counts.append(int(rows.numel()))
    total = sum(positive) + sum(negative)
    scale = 1 / total if total > 0 else 0.0
    return dict(positive=[p * scale for p in positive], negative=[n * scale for n in negative],
                positives=counts, total=total)
