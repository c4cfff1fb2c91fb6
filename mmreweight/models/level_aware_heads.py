"""Dense heads that control how their losses see the FPN levels.

mmdet's anchor heads compute the loss level by level (``multi_apply`` over levels, in order).
For a loss with per-call statistics that matters:

- ``LevelAware*Head`` numbers the calls inside ``loss_by_feat``, which identifies the level. GHM
  uses it to keep one moving average of its gradient-density histogram per level instead of
  mixing the counts of levels whose sizes differ 4x per step.
- ``JointLevel*Head`` makes one call over the anchors of all levels. GHM's density is then
  the paper's, over every example of the batch; level by level, each level's loss is a mean over
  its own bins, so a level that holds no object weighs as much as the one holding them all.

Losses that sum over anchors and divide by ``avg_factor`` (focal, L1, GIoU, centre-ness) give
the same value either way. mmdet's FCOS head already makes one call over all levels.
"""
from typing import Any, List

import torch
from mmdet.models.dense_heads import ATSSHead, RetinaHead
from mmdet.models.utils import images_to_levels
from mmdet.structures.bbox import cat_boxes
from mmdet.utils import InstanceList, OptInstanceList, reduce_mean
from torch import Tensor

from mmreweight.losses import count_fpn_levels
from mmreweight.losses.base import check_loss_fits_head
from mmreweight.registry import MODELS


class LossFitsHeadMixin:
    """Checks at build time that the head's classification loss counts the head's classes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_loss_fits_head(self)


class LevelAwareLossMixin(LossFitsHeadMixin):
    """Runs ``loss_by_feat`` inside :func:`~mmreweight.losses.count_fpn_levels` for every
    mmreweight loss of the head."""

    def loss_by_feat(self, *args: Any, **kwargs: Any) -> dict:
        with count_fpn_levels(self):
            return super().loss_by_feat(*args, **kwargs)


@MODELS.register_module()
class LevelAwareRetinaHead(LevelAwareLossMixin, RetinaHead):
    """``RetinaHead`` with per-FPN-level loss statistics (see the module docstring)."""


@MODELS.register_module()
class LevelAwareATSSHead(LevelAwareLossMixin, ATSSHead):
    """``ATSSHead`` with per-FPN-level loss statistics (see the module docstring)."""


def levels_as_one_map(maps: List[Tensor]) -> Tensor:
    """Per-level ``(N, K, H_l, W_l)`` maps as one ``(N, K, 1, sum H_l W_l)`` map, whose
    ``permute(0, 2, 3, 1).reshape(-1, c)`` rows are each image's level rows in level order, i.e.
    the order of the targets of all levels concatenated per image."""
    return torch.cat([level.flatten(2) for level in maps], dim=2).unsqueeze(2)


def levels_as_one(per_level: List[Tensor]) -> Tensor:
    """Per-level ``(N, n_l, ...)`` targets or anchors (``images_to_levels``' split) as one
    ``(N, sum n_l, ...)`` tensor."""
    return torch.cat(per_level, dim=1)


class JointLevelLossMixin(LossFitsHeadMixin):
    """Marks the heads that compute their losses in one ``loss_by_feat_single`` call over all
    levels."""


@MODELS.register_module()
class JointLevelRetinaHead(JointLevelLossMixin, RetinaHead):
    """``RetinaHead`` whose losses are called once over the anchors of all FPN levels (see the
    module docstring), through the unchanged ``loss_by_feat_single``."""

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
        anchor_list, valid_flag_list = self.get_anchors(featmap_sizes, batch_img_metas,
                                                        device=cls_scores[0].device)
        (labels_list, label_weights_list, bbox_targets_list, bbox_weights_list,
         avg_factor) = self.get_targets(anchor_list, valid_flag_list, batch_gt_instances,
                                        batch_img_metas,
                                        batch_gt_instances_ignore=batch_gt_instances_ignore)
        # images_to_levels splits the per-image anchors as get_targets split the targets
        num_level_anchors = [anchors.size(0) for anchors in anchor_list[0]]
        anchors = images_to_levels([cat_boxes(per_image) for per_image in anchor_list],
                                   num_level_anchors)
        loss_cls, loss_bbox = self.loss_by_feat_single(
            levels_as_one_map(cls_scores), levels_as_one_map(bbox_preds), levels_as_one(anchors),
            levels_as_one(labels_list), levels_as_one(label_weights_list),
            levels_as_one(bbox_targets_list), levels_as_one(bbox_weights_list),
            avg_factor=avg_factor)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox)


@MODELS.register_module()
class JointLevelATSSHead(JointLevelLossMixin, ATSSHead):
    """``ATSSHead`` whose losses are called once over the anchors of all FPN levels (see the
    module docstring), through the unchanged ``loss_by_feat_single``."""

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     centernesses: List[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        featmap_sizes = [featmap.size()[-2:] for featmap in bbox_preds]
        device = cls_scores[0].device
        anchor_list, valid_flag_list = self.get_anchors(featmap_sizes, batch_img_metas,
                                                        device=device)
        (anchor_list, labels_list, label_weights_list, bbox_targets_list, _,
         avg_factor) = self.get_targets(anchor_list, valid_flag_list, batch_gt_instances,
                                        batch_img_metas,
                                        batch_gt_instances_ignore=batch_gt_instances_ignore)
        # ATSSHead's normalisers: positives and the summed centre-ness targets, over all ranks
        avg_factor = reduce_mean(torch.tensor(avg_factor, dtype=torch.float,
                                              device=device)).item()
        loss_cls, loss_bbox, loss_centerness, bbox_avg_factor = self.loss_by_feat_single(
            levels_as_one(anchor_list), levels_as_one_map(cls_scores),
            levels_as_one_map(bbox_preds), levels_as_one_map(centernesses),
            levels_as_one(labels_list), levels_as_one(label_weights_list),
            levels_as_one(bbox_targets_list), avg_factor=avg_factor)
        bbox_avg_factor = reduce_mean(bbox_avg_factor).clamp_(min=1).item()
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox / bbox_avg_factor,
                    loss_centerness=loss_centerness)
