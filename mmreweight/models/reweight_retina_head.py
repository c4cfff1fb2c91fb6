"""RetinaHead whose classification loss takes per-anchor weights from an attached weighter."""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmdet.models.dense_heads import RetinaHead
from mmdet.models.task_modules.prior_generators import anchor_inside_flags
from mmdet.structures.bbox import BaseBoxes, cat_boxes, get_box_tensor
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.structures import InstanceData
from torch import Tensor

from mmreweight.losses.base import check_loss_fits_head
from mmreweight.losses.utils import AVG_FACTOR_EPS
from mmreweight.registry import MODELS
from mmreweight.weighting.base import (CLEAN_POSITIVE, NOISY_POSITIVE, NOT_POSITIVE,
                                       UNKNOWN_POSITIVE, AnchorLossContext)
from mmreweight.weighting.levels import flatten_levels

@dataclass
class FlatTargets:
    """Anchor targets of a batch with all images and levels flattened image-major.

    Row ``i * n + j`` is anchor ``j`` of image ``i`` where ``n`` is the number of anchors per image
    and ``j`` runs over the levels' anchors concatenated (the order ``_get_targets_single`` sees).
    """
    labels: Tensor  # (N,) long, ``num_classes`` = background
    label_weights: Tensor  # (N,)
    bbox_targets: Tensor  # (N, 4)
    bbox_weights: Tensor  # (N, 4)
    anchors: Tensor  # (N, 4)
    avg_factor: float
    gt_noisy: Tensor  # (N,) long: NOT_, CLEAN_, NOISY_ or UNKNOWN_POSITIVE
    #: (N,) long: the annotation a positive anchor is assigned to, numbered through the batch
    #: (image 0's annotations first); -1 for other anchors
    gt_index: Optional[Tensor] = None


@MODELS.register_module()
class ReweightRetinaHead(RetinaHead):
    r"""``RetinaHead`` whose classification loss is reweighted per anchor.

    With all levels and images flattened into anchors :math:`a` and a per-anchor loss
    :math:`\ell_a = \sum_c \mathrm{loss\_cls}(z_{ac}, y_{ac})\,\lambda_a` (``reduction='none'``,
    :math:`\lambda_a` the head's label weight, ``loss_weight`` included), the classification loss is

    .. math:: L_\mathrm{cls} = \frac{\sum_a m_a \ell_a}{\mathrm{avg\_factor} + \epsilon}

    where :math:`m_a` are the (detached) weights returned by ``self.weighter`` — mean one over
    valid anchors (label weight > 0) by the :class:`AnchorWeighter` convention — and
    :math:`\epsilon` is mmdet's float32 eps. With no weighter, or :math:`m \equiv 1`, this is
    exactly RetinaHead's loss (up to float summation order). The box loss is unchanged.

    The weighter is not a submodule (it must not enter the detector's ``state_dict``, optimizer or
    DDP reducer); the :class:`MetaReweightHook` attaches it and checkpoints it separately. During a
    training forward the head keeps the classification-branch features (``retina_cls`` input) and
    its input features per level, so weighters can take directional derivatives without a new
    forward.
    """

    #: what :class:`MetaReweightHook` checks before attaching a weighter
    supports_anchor_weights = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_loss_fits_head(self)
        self.__dict__['_weighter'] = None  # outside ``_modules`` on purpose, see class docstring
        self._weighting_enabled = True
        self._return_gt_flags = False
        self._cls_feats: List[Tensor] = []
        self._in_feats: Optional[Sequence[Tensor]] = None
        self.last_weight_stats: Dict[str, float] = {}

    # ------------------------------------------------------------------ weighter plumbing
    @property
    def weighter(self):
        return self.__dict__['_weighter']

    def __setattr__(self, name: str, value: Any) -> None:
        # nn.Module.__setattr__ would register a Module-valued weighter as a submodule.
        if name == 'weighter':
            self.__dict__['_weighter'] = value
        else:
            super().__setattr__(name, value)

    @contextmanager
    def plain_loss(self):
        """Within this context ``loss_by_feat`` ignores the weighter (meta-side clean losses)."""
        previous, self._weighting_enabled = self._weighting_enabled, False
        try:
            yield
        finally:
            self._weighting_enabled = previous

    @property
    def cls_out(self) -> torch.nn.Conv2d:
        """The classification output layer (``theta='cls_out'``)."""
        return self.retina_cls

    def cls_branch_features(self, x: Tensor) -> Tensor:
        """Input of ``retina_cls`` for one level's input features ``x``."""
        for cls_conv in self.cls_convs:
            x = cls_conv(x)
        return x

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tuple[Tensor, ...]) -> Tuple[List[Tensor], List[Tensor]]:
        self._cls_feats = []
        self._in_feats = x
        return super().forward(x)

    def forward_single(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        cls_feat = self.cls_branch_features(x)
        reg_feat = x
        for reg_conv in self.reg_convs:
            reg_feat = reg_conv(reg_feat)
        if self.training:
            self._cls_feats.append(cls_feat)
        return self.retina_cls(cls_feat), self.retina_reg(reg_feat)

    # ------------------------------------------------------------------ targets
    def _get_targets_single(self, flat_anchors: Union[Tensor, BaseBoxes], valid_flags: Tensor,
                            gt_instances: InstanceData, img_meta: dict,
                            gt_instances_ignore: Optional[InstanceData] = None,
                            unmap_outputs: bool = True) -> tuple:
        res = super()._get_targets_single(flat_anchors, valid_flags, gt_instances, img_meta,
                                          gt_instances_ignore, unmap_outputs)
        if not self._return_gt_flags:
            return res
        # Mark positives by the cleanliness of the annotation they are matched to, for logging.
        sampling_result = res[6]
        inside = anchor_inside_flags(flat_anchors, valid_flags, img_meta['img_shape'][:2],
                                     self.train_cfg['allowed_border'])
        if unmap_outputs:
            index, count = inside.nonzero().squeeze(1), inside.numel()
        else:
            count = int(inside.sum())
            index = torch.arange(count, device=inside.device)
        flags = torch.full((count, ), NOT_POSITIVE, dtype=torch.long, device=inside.device)
        pos = index[sampling_result.pos_inds]
        noisy = gt_instances.get('noisy', None)
        if noisy is None:
            flags[pos] = UNKNOWN_POSITIVE
        else:
            noisy = torch.as_tensor(noisy, device=flags.device).bool()
            flags[pos] = noisy[sampling_result.pos_assigned_gt_inds].long()
        gt_index = torch.full_like(flags, -1)
        gt_index[pos] = sampling_result.pos_assigned_gt_inds.long()
        return res + (flags, gt_index)

    def flat_targets(self, featmap_sizes, batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None,
                     device='cpu') -> FlatTargets:
        """Anchor targets of a batch, flattened image-major (see :class:`FlatTargets`)."""
        anchor_list, valid_flag_list = self.get_anchors(featmap_sizes, batch_img_metas,
                                                        device=device)
        self._return_gt_flags = True
        try:
            (labels, label_weights, bbox_targets, bbox_weights, avg_factor, gt_flags,
             gt_index) = self.get_targets(anchor_list, valid_flag_list, batch_gt_instances,
                                          batch_img_metas, batch_gt_instances_ignore)
        finally:
            self._return_gt_flags = False
        # get_targets returns per-level (B, n_l, ...) tensors; concatenating levels on dim 1 gives
        # the image-major order of flatten_levels.

        def cat(t):
            t = torch.cat(t, 1)
            return t.reshape(-1, *t.shape[2:])
        anchors = torch.stack([get_box_tensor(cat_boxes(a)) for a in anchor_list])
        # per-image annotation numbers -> numbers through the batch
        gt_index = torch.cat(gt_index, 1)
        counts = torch.tensor([0] + [len(g) for g in batch_gt_instances[:-1]],
                              device=gt_index.device)
        offsets = torch.cumsum(counts, 0)[:, None]
        gt_index = torch.where(gt_index >= 0, gt_index + offsets, gt_index).reshape(-1)
        return FlatTargets(cat(labels), cat(label_weights), cat(bbox_targets), cat(bbox_weights),
                           anchors.reshape(-1, anchors.size(-1)), avg_factor, cat(gt_flags),
                           gt_index)

    def per_anchor_cls_loss(self, logits: Tensor, labels: Tensor,
                            label_weights: Tensor) -> Tensor:
        """(N,) classification loss per anchor: the loss's ``reduction='none'`` output summed over
        classes."""
        loss = self.loss_cls(logits, labels, label_weights, reduction_override='none')
        if loss.dim() == 2:
            return loss.sum(1)
        if loss.dim() == 1 and loss.numel() == logits.size(0):
            return loss
        raise TypeError(
            f'{type(self.loss_cls).__name__} with reduction_override="none" returned shape '
            f'{tuple(loss.shape)}; per-anchor weighting needs (N, C) or (N,), '
            f'N={logits.size(0)}.')

    # ------------------------------------------------------------------ loss
    def loss_by_feat(self, cls_scores: List[Tensor], bbox_preds: List[Tensor],
                     batch_gt_instances: InstanceList, batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        cls_feats, in_feats = self._cls_feats, self._in_feats
        self._cls_feats, self._in_feats = [], None  # do not keep the graph alive past the loss
        if self.weighter is None or not self._weighting_enabled:
            return super().loss_by_feat(cls_scores, bbox_preds, batch_gt_instances,
                                        batch_img_metas, batch_gt_instances_ignore)

        featmap_sizes = [s.size()[-2:] for s in cls_scores]
        targets = self.flat_targets(featmap_sizes, batch_gt_instances, batch_img_metas,
                                    batch_gt_instances_ignore, device=cls_scores[0].device)
        logits = flatten_levels(cls_scores, self.cls_out_channels)
        per_anchor = self.per_anchor_cls_loss(logits, targets.labels, targets.label_weights)
        ctx = AnchorLossContext(
            loss=per_anchor, logits=logits, labels=targets.labels,
            label_weights=targets.label_weights, num_classes=self.num_classes,
            avg_factor=float(targets.avg_factor),
            progress=float(getattr(self.weighter, 'progress', 0.0)),
            extras=dict(head=self, cls_feats=cls_feats, feats=in_feats, targets=targets,
                        gt_noisy=targets.gt_noisy, num_images=len(batch_img_metas),
                        gt_label_issue=anchors_of_marked(batch_gt_instances, targets.gt_index)))
        # Meta computations run in full precision even when the training step is autocast.
        with torch.autocast(device_type=logits.device.type, enabled=False):
            weights = self.weighter(ctx)
        if weights.shape != per_anchor.shape:
            raise ValueError(f'{type(self.weighter).__name__} returned weights of shape '
                             f'{tuple(weights.shape)}, expected {tuple(per_anchor.shape)}.')
        # The weights are constants of the training loss: no gradient flows into the weighter.
        weights = weights.detach().to(per_anchor.dtype)
        loss_cls = weighted_loss(per_anchor, weights, targets.avg_factor, logits,
                                 ctx.extras.get('dloss_dlogits'))
        self.last_weight_stats = weight_stats(weights, targets)

        bbox_pred = flatten_levels(bbox_preds, self.bbox_coder.encode_size)
        if self.reg_decoded_bbox:
            bbox_pred = get_box_tensor(self.bbox_coder.decode(targets.anchors, bbox_pred))
        loss_bbox = self.loss_bbox(bbox_pred, targets.bbox_targets, targets.bbox_weights,
                                   avg_factor=targets.avg_factor)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox)


def anchors_of_marked(batch_gt_instances: InstanceList, gt_index: Tensor,
                      field: str = 'label_issue') -> Tensor:
    """(N,) bool: whether the annotation an anchor is matched to (``gt_index``, numbered through
    the batch; -1 for none) has ``field`` set; an image whose instances lack the field has none
    marked."""
    marks = torch.cat([torch.zeros(len(g), dtype=torch.bool) if g.get(field) is None
                       else torch.as_tensor(g.get(field)).bool().cpu()
                       for g in batch_gt_instances] or [torch.zeros(0, dtype=torch.bool)])
    marks = marks.to(gt_index.device)
    if marks.numel() == 0:
        return torch.zeros_like(gt_index, dtype=torch.bool)
    return (gt_index >= 0) & marks[gt_index.clamp(min=0)]


def weighted_loss(per_anchor: Tensor, weights: Tensor, avg_factor: float, logits: Tensor,
                  dloss_dlogits: Optional[Tensor] = None) -> Tensor:
    r""":math:`\sum_a w_a \ell_a / (\mathrm{avg\_factor} + \epsilon)` with constant weights.

    Meta weighters take :math:`\partial \ell_a / \partial z_a` of every anchor anyway
    (``dloss_dlogits``, w.r.t. ``logits``). Given it, the loss is that value with the gradient
    :math:`w_a\, \partial \ell_a / \partial z_a / (\mathrm{avg\_factor} + \epsilon)` attached
    to the logits directly: the backward does not run through the loss's graph a second time, and
    that graph is freed with the weighter's context instead of living until the backward.
    """
    if dloss_dlogits is None or dloss_dlogits.shape != logits.shape:
        return (weights * per_anchor).sum() / (avg_factor + AVG_FACTOR_EPS)
    value = (weights * per_anchor.detach()).sum() / (avg_factor + AVG_FACTOR_EPS)
    grad = (weights[:, None] / (avg_factor + AVG_FACTOR_EPS) * dloss_dlogits).to(logits.dtype)
    surrogate = (logits * grad).sum()
    return value + (surrogate - surrogate.detach()).to(value.dtype)  # exactly value, forward


@torch.no_grad()
def weight_stats(weights: Tensor, targets: FlatTargets) -> Dict[str, float]:
    """Scalars to log: mean weight of positive / negative anchors, fraction of zero weights (over
    valid anchors) and, when annotations carry a ``noisy`` flag, mean weight of anchors matched to
    noisy vs clean annotations. One device-to-host copy for all of them."""
    valid = targets.label_weights > 0
    flags = targets.gt_noisy
    masks = dict(meta_w_pos=valid & (flags != NOT_POSITIVE),
                 meta_w_neg=valid & (flags == NOT_POSITIVE),
                 meta_w_noisy=valid & (flags == NOISY_POSITIVE),
                 meta_w_clean=valid & (flags == CLEAN_POSITIVE))
    w = weights.detach().float()
    sums = [(w * m).sum() for m in masks.values()] + [((w == 0) & valid).sum().float()]
    counts = [m.sum().float() for m in masks.values()] + [valid.sum().float()]
    sums, counts = torch.stack(sums).tolist(), torch.stack(counts).tolist()
    nan = float('nan')
    stats = {k: s / c if c else nan for k, s, c in zip(masks, sums, counts)}
    stats['meta_w_zero_frac'] = sums[-1] / counts[-1] if counts[-1] else nan
    if not (counts[2] or counts[3]):  # no annotation noise flags in this batch
        del stats['meta_w_noisy'], stats['meta_w_clean']
    return stats


__all__ = ['ReweightRetinaHead', 'FlatTargets', 'flatten_levels', 'weighted_loss', 'weight_stats']
