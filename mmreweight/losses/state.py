"""Context managers that steer the running state of mmreweight losses.

Both find the losses with ``module.modules()``, so they accept a loss, a head, a detector or a
DDP-wrapped model, and both restore the previous state on exit (they nest).
"""
from contextlib import contextmanager
from typing import Iterator, List

from torch import nn

from .base import ReweightLoss


def reweight_losses(*modules: nn.Module) -> List[ReweightLoss]:
    """Every mmreweight loss inside ``modules`` (each counted once)."""
    found = {}
    for module in modules:
        for sub in module.modules():
            if isinstance(sub, ReweightLoss):
                found[id(sub)] = sub
    return list(found.values())


@contextmanager
def count_fpn_levels(*loss_modules: nn.Module) -> Iterator[None]:
    """Number the calls of each loss inside the block as FPN levels 0, 1, 2, ...

    mmdet's heads call the loss once per level, in level order (``multi_apply``); wrapping a
    head's ``loss_by_feat`` in this block lets GHM keep one moving average per level. Outside
    any block every call is level 0, which is mmdet's behaviour.
    """
    losses = reweight_losses(*loss_modules)
    saved = [loss._fpn_level for loss in losses]
    for loss in losses:
        loss._fpn_level = 0
    try:
        yield
    finally:
        for loss, level in zip(losses, saved):
            loss._fpn_level = level


@contextmanager
def frozen_loss_statistics(module: nn.Module) -> Iterator[None]:
    """Forward passes inside the block leave running statistics (GHM's moving averages) as they
    were; the losses are computed exactly as a normal forward would compute them.

    For forwards that must not count, such as a meta step's look-ahead.
    """
    losses = reweight_losses(module)
    saved = [loss.update_stats for loss in losses]
    for loss in losses:
        loss.update_stats = False
    try:
        yield
    finally:
        for loss, flag in zip(losses, saved):
            loss.update_stats = flag
