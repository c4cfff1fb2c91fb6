"""The base class of mmreweight's losses: reduction and weight handling, and per-module state."""
import logging
from typing import Any, Dict, Optional

from mmengine.logging import print_log
from torch import nn

from .utils import check_number, check_reduction


def check_use_sigmoid(use_sigmoid: Optional[bool], expected: bool, loss: str) -> None:
    """mmdet's heads read ``use_sigmoid`` from the loss *config* to size the classifier
    (C or C+1 outputs), so configs must keep passing it; reject a value the loss cannot honour."""
    if use_sigmoid is not None and bool(use_sigmoid) != expected:
        raise ValueError(f'use_sigmoid={use_sigmoid} is not supported by {loss} '
                         f'(it needs use_sigmoid={expected})')


def check_loss_fits_head(head, key: str = 'model.bbox_head') -> None:
    """Raise ValueError if ``head.loss_cls`` counts classes itself (``num_classes``, as
    CBFocalLoss) and disagrees with ``head.num_classes``: the loss would meet labels outside its
    range, or never see a class, with an error far from the config line to change."""
    loss = getattr(head, 'loss_cls', None)
    loss_classes, head_classes = getattr(loss, 'num_classes', None), getattr(head, 'num_classes',
                                                                             None)
    if not isinstance(loss_classes, int) or not isinstance(head_classes, int):
        return
    if loss_classes != head_classes:
        raise ValueError(
            f'{key}.loss_cls ({type(loss).__name__}) has num_classes={loss_classes} but {key} '
            f'({type(head).__name__}) has num_classes={head_classes}: the loss and the head must '
            f'count the same classes; set {key}.loss_cls.num_classes and {key}.num_classes both '
            'to the number of dataset classes')


def fit_loaded_statistics(loss: nn.Module, state_dict: Dict[str, Any], key: str,
                          restart: bool) -> None:
    """Check a checkpoint's running statistics (``state_dict[key]``) against ``loss``'s buffer of
    that name before they are loaded.

    Missing: a warning that they start fresh (a checkpoint of another loss, e.g. a pretrained
    focal detector). Another shape (other bins, FPN levels or classes): an error, since resuming
    would silently drop them; with ``restart`` (the loss's ``restart_statistics``) a warning, and
    the loss's fresh statistics are kept.
    """
    name = key.rsplit('.', 1)[-1]
    own = getattr(loss, name)
    loaded = state_dict.get(key)
    if loaded is None:
        print_log(f'{key} is not in the checkpoint: {type(loss).__name__} starts its statistics '
                  'fresh', logger='current', level=logging.WARNING)
        return
    if tuple(loaded.shape) == tuple(own.shape):
        return
    if restart:
        del state_dict[key]
        print_log(f'{key} in the checkpoint has shape {tuple(loaded.shape)}, the loss '
                  f'{tuple(own.shape)}: restart_statistics=True, so they start fresh',
                  logger='current', level=logging.WARNING)
        return
    raise RuntimeError(
        f'{key} in the checkpoint has shape {tuple(loaded.shape)} but {type(loss).__name__} '
        f'({loss.extra_repr()}) keeps {tuple(own.shape)}: the checkpoint was trained with other '
        'settings (bins, num_levels or num_classes). Use the settings it was trained with, or '
        'set restart_statistics=True on the loss to start its statistics fresh')


class ReweightLoss(nn.Module):
    """Base of every mmreweight loss.

    Args:
        reduction: 'none' | 'mean' | 'sum', overridable per call by ``reduction_override``.
        loss_weight: multiplies the reduced loss.
        check_values: check labels, targets and weights for bad values (one device-to-host copy
            per call); shapes are always checked.
        check_finite: also reject non-finite ``pred`` (off by default: it reads every logit).

    Attributes:
        twice_differentiable: the loss has a second derivative (meta-reweighting checks this
            before differentiating through an inner step).
        anchor_separable: each anchor's loss depends on that anchor's inputs only, so the loss
            of a batch can be evaluated in chunks of anchors (GHM's histogram couples them).
        update_stats: whether a forward may update running statistics (GHM's moving averages).
            :func:`~mmreweight.losses.frozen_loss_statistics` clears it during look-ahead
            forwards.
    """

    twice_differentiable = True
    anchor_separable = True

    def __init__(self,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 check_values: bool = True,
                 check_finite: bool = False) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.loss_weight = check_number(loss_weight, 'loss_weight', 0.0)
        self.check_values = bool(check_values)
        self.check_finite = bool(check_finite)
        self.update_stats = True
        # None outside count_fpn_levels (every call is level 0); the next call's level inside it
        self._fpn_level: Optional[int] = None

    def next_fpn_level(self, num_levels: int) -> int:
        """The FPN level of the current call: 0 outside :func:`count_fpn_levels`, else the
        number of calls made so far inside it."""
        if self._fpn_level is None:
            return 0
        level = self._fpn_level
        if level >= num_levels:
            raise RuntimeError(f'{type(self).__name__} was called more than num_levels='
                               f'{num_levels} times inside count_fpn_levels(); raise num_levels')
        self._fpn_level = level + 1
        return level

    def extra_repr(self) -> str:
        return f'reduction={self.reduction!r}, loss_weight={self.loss_weight}'
