"""Dense heads whose losses know which FPN level each call is for.

mmdet's anchor heads compute the loss level by level (``multi_apply`` over levels, in order), so
numbering the calls inside ``loss_by_feat`` identifies the level. GHM uses it to keep one moving
average of its gradient-density histogram per level instead of mixing the counts of levels whose
sizes differ 4x per step. Losses without per-level state are unaffected.
"""
from typing import Any

from mmdet.models.dense_heads import ATSSHead, RetinaHead

from mmreweight.losses import count_fpn_levels
from mmreweight.losses.base import check_loss_fits_head
from mmreweight.registry import MODELS


class LevelAwareLossMixin:
    """Runs ``loss_by_feat`` inside :func:`~mmreweight.losses.count_fpn_levels` for every
    mmreweight loss of the head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_loss_fits_head(self)

    def loss_by_feat(self, *args: Any, **kwargs: Any) -> dict:
        with count_fpn_levels(self):
            return super().loss_by_feat(*args, **kwargs)


@MODELS.register_module()
class LevelAwareRetinaHead(LevelAwareLossMixin, RetinaHead):
    """``RetinaHead`` with per-FPN-level loss statistics (see the module docstring)."""


@MODELS.register_module()
class LevelAwareATSSHead(LevelAwareLossMixin, ATSSHead):
    """``ATSSHead`` with per-FPN-level loss statistics (see the module docstring)."""
