"""Predefined MentorNet curricula: closed-form target weights v*(inputs).

MentorNet (Jiang et al., ICML 2018) feeds its mentor four inputs per example:

* ``loss``  ℓ, the example's current loss;
* ``diff``  ℓ − λ, where λ is a moving average of the p-th percentile loss;
* ``label`` here a positive/negative flag y ∈ {0, 1} (1 = foreground anchor);
* ``epoch`` e ∈ {0, …, 99}, training progress in percent.

Each predefined curriculum is a closed-form v*(ℓ, diff, y, e) ∈ [0, 1]. They are the targets a
MentorNet network is fitted to ("MentorNet-PD"), and they can be used directly as weights. All
functions here are pure: tensors in, a new float tensor out, nothing is tracked by autograd.
"""
import math
from functools import partial
from typing import Callable, Dict

import torch
from torch import Tensor

#: number of "epochs" MentorNet's training progress is quantised into
NUM_EPOCHS = 100


def progress_to_epoch(progress: float) -> int:
    """Training progress in [0, 1] → MentorNet epoch ``e = min(⌊100·progress⌋, 99)``."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f'progress must be in [0, 1], got {progress}')
    # The small epsilon keeps e.g. progress=0.29 (0.28999… in binary) in epoch 29.
    return min(int(math.floor(progress * NUM_EPOCHS + 1e-9)), NUM_EPOCHS - 1)


def fraction_to_epoch(fraction: float) -> int:
    """A schedule boundary given in progress units → the epoch it names, ``round(100·fraction)``."""
    return int(round(fraction * NUM_EPOCHS))


def self_paced(loss: Tensor, diff: Tensor, label: Tensor, epoch: Tensor) -> Tensor:
    """Self-paced learning: ``v* = 1[diff ≤ 0]``, keep examples no harder than the percentile."""
    return (diff <= 0).to(loss.dtype)


def hard_example_mining(loss: Tensor, diff: Tensor, label: Tensor, epoch: Tensor) -> Tensor:
    """Hard-example mining: ``v* = 1[diff ≥ 0] ∨ 1[y = 1]``.

    Keeps examples at least as hard as the percentile and every positive (as the reference does:
    mining selects among negatives only).
    """
    return ((diff >= 0) | (label > 0)).to(loss.dtype)


def focal(loss: Tensor, diff: Tensor, label: Tensor, epoch: Tensor, gamma: float = 2.0) -> Tensor:
    """Focal-loss curriculum: ``v* = (1 − e^{−ℓ})^γ``, γ = 2.

    ``e^{−ℓ}`` is the probability given to the true label when ℓ is a cross-entropy, so this is
    focal loss's modulating factor ``(1 − p_t)^γ``.
    """
    return (1 - torch.exp(-loss)).clamp(min=0).pow(gamma)


def spcl_linear(loss: Tensor, diff: Tensor, label: Tensor, epoch: Tensor,
                gamma: float = 1.0) -> Tensor:
    """Self-paced curriculum learning, linear regulariser: ``v* = clip(1 − diff/γ, 0, 1)``.

    γ is in loss units: examples with diff ≤ 0 get 1 and the weight falls linearly to 0 at
    ``diff = γ``. The reference's γ = 1 suits cross-entropy losses of order 1; per-anchor focal
    losses are far smaller, so scale γ with them.
    """
    if gamma <= 0:
        raise ValueError(f'spcl gamma must be > 0, got {gamma}')
    return (1 - diff / gamma).clamp(0, 1).to(loss.dtype)


def mentornet_pd(loss: Tensor, diff: Tensor, label: Tensor, epoch: Tensor,
                 burn_in_epoch: int = 18, spcl_epoch: int = 90, gamma: float = 1.0) -> Tensor:
    """MentorNet-PD, the predefined schedule of the reference::

        v* = 1                              if e ≤ burn_in_epoch        (burn-in, default 18)
             clip(1 − diff/γ, 0, 1)          if e ≥ spcl_epoch           (SPCL-linear, default 90)
             1[diff ≤ 0]                     otherwise                   (self-paced)

    Burn-in wins when the two ranges overlap.
    """
    v = torch.where(epoch >= spcl_epoch, spcl_linear(loss, diff, label, epoch, gamma),
                    self_paced(loss, diff, label, epoch))
    return torch.where(epoch <= burn_in_epoch, torch.ones_like(v), v)


#: A curriculum: v*(loss, diff, label, epoch) with every hyper-parameter already bound.
Curriculum = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]

PREDEFINED = ('pd', 'self_paced', 'hem', 'focal', 'spcl_linear')


def make_curriculum(name: str, burn_in_epoch: int = 18, spcl_epoch: int = 90,
                    spcl_gamma: float = 1.0, focal_gamma: float = 2.0) -> Curriculum:
    """The predefined curriculum called ``name`` with its hyper-parameters bound.

    Raises:
        ValueError: ``name`` is not one of :data:`PREDEFINED`.
    """
    if spcl_gamma <= 0:
        raise ValueError(f'spcl_gamma must be > 0, got {spcl_gamma}')
    if focal_gamma < 0:
        raise ValueError(f'focal_gamma must be >= 0, got {focal_gamma}')
    # partials rather than lambdas, so a weighter holding one can be pickled
    table: Dict[str, Curriculum] = {
        'self_paced': self_paced,
        'hem': hard_example_mining,
        'focal': partial(focal, gamma=focal_gamma),
        'spcl_linear': partial(spcl_linear, gamma=spcl_gamma),
        'pd': partial(mentornet_pd, burn_in_epoch=burn_in_epoch, spcl_epoch=spcl_epoch,
                      gamma=spcl_gamma),
    }
    if name not in table:
        raise ValueError(f'unknown MentorNet curriculum {name!r}; predefined ones are '
                         f'{", ".join(PREDEFINED)}')
    return table[name]


__all__ = ['NUM_EPOCHS', 'PREDEFINED', 'Curriculum', 'progress_to_epoch', 'fraction_to_epoch',
           'self_paced', 'hard_example_mining', 'focal', 'spcl_linear', 'mentornet_pd',
           'make_curriculum']
