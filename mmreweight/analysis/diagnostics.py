r"""Per-anchor diagnostics of a detector (trained, or freshly initialised): for a few training
batches, each valid anchor's classification loss, the weight the config's method gives it, its
label, positive flag, FPN level and shape (base prior), the annotation it is matched to (and their
IoU) and whether that annotation is noisy, plus GHM's gradient-density histogram of
:math:`g = |\sigma(x) - t|` over valid elements. Nothing is updated: no optimizer step, GHM moving
averages and MentorNet percentiles are read, not written, MW-Net takes no meta step; the detector
is never saved.

What "weight" and "loss" are, per method (the weight multiplies the loss in training):

* focal: weight 1; loss = the focal loss.
* GHM-C: the anchor's effective harmonizing weight :math:`\sum_c \beta_{ac} \ell_{ac} /
  \sum_c \ell_{ac}` (each level's weights from its moving average, updated with this batch as
  the loss would); loss = binary cross-entropy.
* class-balanced focal: the weight of the anchor's class (background 1); loss = focal without
  the class weight.
* MetaReweightHook weighters (L2RW, Meta-Weight-Net, MentorNet): the weighter's output, called
  by the head itself; loss = the head's per-anchor loss. L2RW gets a fresh clean batch for each
  training batch, as in training. With a LabelIssueHook in the config the batches first get the
  flags (and relabels) its checkpoint saved, so a LabelIssueWeighter weighs them as in training.
"""
import itertools
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmdet.models.task_modules.prior_generators import anchor_inside_flags
from mmdet.models.utils import unpack_gt_instances
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint, set_random_seed
from torch import Tensor

import mmreweight  # noqa: F401  (registers components, installs safe checkpoint loading)
from mmreweight.engine.meta_hook import CHECKPOINT_KEY
from mmreweight.losses import CBFocalLoss, GHMC, GHMR, bce_gradient_norm, one_hot_targets
from mmreweight.losses.gradient_density import (floor_binning_is_exact, ghm_edges,
                                                gradient_density, harmonizing_weights)
from mmreweight.models.level_aware_heads import JointLevelLossMixin, LevelAwareLossMixin
from mmreweight.models.reweight_retina_head import (CLEAN_POSITIVE, NOISY_POSITIVE,
                                                    NOT_POSITIVE, UNKNOWN_POSITIVE)
from mmreweight.registry import HOOKS, MODELS
from mmreweight.analysis import box_regression
from mmreweight.analysis.gradient_share import classification_gradient_share
from mmreweight.weighting.class_counts import count_instances_per_class
from mmreweight.weighting.levels import flatten_levels

#: GHM-C's number of bins in the paper and in configs/retinanet_ghm.py
HIST_BINS = 30
#: a weight below this counts as zeroed (L2RW clips to exactly 0; soft weights come near it)
ZERO_WEIGHT = 1e-3
#: histograms kept: all valid elements, target-1 elements, and those of clean / noisy positives
HISTOGRAMS = ('all', 'target1', 'target1_clean', 'target1_noisy')


def density_histogram(g: Tensor, valid: Tensor, bins: int = HIST_BINS) -> np.ndarray:
    """Counts of the valid elements' gradient norms in GHM-C's ``bins`` bins of [0, 1]."""
    edges = ghm_edges(bins, 1.0 + 1e-6).to(g.device)
    _, counts = gradient_density(g.float(), valid, edges, floor_binning_is_exact(edges))
    return counts.cpu().numpy().astype(np.int64)


def anchor_levels(shapes: List[torch.Size], num_base_priors: int) -> Tensor:
    """(B * N,) FPN level of every anchor in the image-major order of ``flatten_levels``, from
    the per-level feature shapes (B, C, H, W)."""
    per_image = torch.cat([torch.full((s[-2] * s[-1] * num_base_priors, ), level,
                                      dtype=torch.long)
                           for level, s in enumerate(shapes)])
    return per_image.repeat(shapes[0][0])


def anchor_priors(shapes: List[torch.Size], num_base_priors: int) -> Tensor:
    """(B * N,) base-prior index (which of a location's anchor shapes) of every anchor, in the
    same order as :func:`anchor_levels`: ``flatten_levels`` keeps a location's priors adjacent.
    With a weighter whose theta is the classification output conv, each prior has its own output
    channels, so its anchors' alignments use only their own slice of the clean gradient."""
    per_image = torch.cat([torch.arange(num_base_priors).repeat(s[-2] * s[-1]) for s in shapes])
    return per_image.repeat(shapes[0][0])


def anchor_targets(head, cls_scores: List[Tensor], batch_gt_instances, batch_img_metas,
                   batch_gt_instances_ignore=None) -> Dict[str, Tensor]:
    """Labels, label weights and noise flags of every anchor (image-major, levels
    concatenated) from mmdet's own ``get_targets``, for heads of any ``AnchorHead`` type, and
    which annotation each positive anchor is matched to, and how well.

    ``gt_noisy`` uses :mod:`~mmreweight.models.reweight_retina_head`'s codes: not positive,
    clean / noisy positive, or positive of an annotation without a noise flag. ``gt_index``
    numbers the batch's annotations in image order (-1: not positive); ``gt_iou`` is a
    positive anchor's IoU with its annotation (0: not positive).
    """
    return anchor_targets_at(head, [s.shape[-2:] for s in cls_scores], cls_scores[0].device,
                             batch_gt_instances, batch_img_metas, batch_gt_instances_ignore)


def anchor_targets_at(head, featmap_sizes, device, batch_gt_instances, batch_img_metas,
                      batch_gt_instances_ignore=None) -> Dict[str, Tensor]:
    """:func:`anchor_targets` for feature maps of the given sizes."""
    anchor_list, valid_flag_list = head.get_anchors(featmap_sizes, batch_img_metas, device=device)
    labels, label_weights, _, _, _, sampling = head.get_targets(
        anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas,
        batch_gt_instances_ignore, return_sampling_results=True)
    flags, gt_index, gt_iou = [], [], []
    first_gt = 0
    for i, result in enumerate(sampling):
        # assignment ran on the anchors inside the image; map its indices back to all anchors
        inside = anchor_inside_flags(torch.cat(anchor_list[i]), torch.cat(valid_flag_list[i]),
                                     batch_img_metas[i]['img_shape'][:2],
                                     head.train_cfg['allowed_border'])
        index = inside.nonzero().squeeze(1)
        flag = torch.full((inside.numel(), ), NOT_POSITIVE, dtype=torch.long, device=device)
        pos = index[result.pos_inds]
        noisy = batch_gt_instances[i].get('noisy', None)
        if noisy is None:
            flag[pos] = UNKNOWN_POSITIVE
        else:
            noisy = torch.as_tensor(noisy, device=device).bool()
            flag[pos] = noisy[result.pos_assigned_gt_inds].long()
        flags.append(flag)
        gt_index.append(torch.full_like(flag, -1).index_put_(
            (pos, ), result.pos_assigned_gt_inds.long() + first_gt))
        gt_iou.append(torch.zeros(inside.numel(), device=device).index_put_(
            (pos, ), bbox_overlaps(get_box_tensor(result.pos_priors),
                                   get_box_tensor(result.pos_gt_bboxes), is_aligned=True)))
        first_gt += len(batch_gt_instances[i])

    def flat(per_level):  # per level (B, n_l) -> (B * N,)
        return torch.cat(per_level, 1).reshape(-1)

    return dict(labels=flat(labels), label_weights=flat(label_weights), gt_noisy=torch.cat(flags),
                gt_index=torch.cat(gt_index), gt_iou=torch.cat(gt_iou),
                num_gts=torch.tensor(first_gt))


@torch.no_grad()
def matched_logits(detector, data) -> Dict[str, Any]:
    """Classification logits of one batch's positive anchors and the annotations they are
    matched to, from an anchor-head detector (RetinaNet's ``bbox_head``) in its current train /
    eval mode, without any loss or weighter.

    Returns ``logits`` (P, C) and ``gt_index`` (P,) of the P positive anchors, ``gt_index``
    numbering the batch's ground-truth instances in image order; per instance in that order,
    ``gt_labels`` (G,); per image, ``img_ids`` and ``num_gts`` (its number of instances).
    """
    data = detector.data_preprocessor(data, True)
    samples = data['data_samples']
    head = detector.bbox_head
    cls_scores, _ = head(detector.extract_feat(data['inputs']))
    gts, ignores, metas = unpack_gt_instances(samples)
    targets = anchor_targets(head, cls_scores, gts, metas, ignores)
    logits = flatten_levels(cls_scores, head.cls_out_channels)
    pos = targets['gt_index'] >= 0
    return dict(logits=logits[pos].float().cpu(), gt_index=targets['gt_index'][pos].cpu(),
                gt_labels=torch.cat([s.gt_instances.labels.reshape(-1).cpu().long()
                                     for s in samples]),
                img_ids=[s.metainfo.get('img_id') for s in samples],
                num_gts=[len(s.gt_instances) for s in samples])


def ghm_anchor_weights(loss_cls: GHMC, logits: Tensor, labels: Tensor, label_weights: Tensor,
                       levels: Tensor, per_level_stats: bool):
    """(per-anchor BCE loss, per-anchor effective GHM-C weight) as the loss would weight this
    batch: each level's histogram, moving average updated with it (not stored)."""
    num_classes = logits.shape[1]
    targets = one_hot_targets(labels, num_classes)
    valid = (label_weights > 0).unsqueeze(1).expand_as(logits)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits.float(), targets.float(), reduction='none') * valid
    beta = torch.zeros_like(bce)
    for level in levels.unique().tolist():
        rows = levels == level
        g = bce_gradient_norm(logits[rows].float(), targets[rows])
        slot, counts = gradient_density(g, valid[rows], loss_cls.edges, loss_cls._floor_exact)
        tot = valid[rows].sum(dtype=torch.float32).clamp(min=1)
        if loss_cls.momentum > 0:
            row = level if per_level_stats and level < loss_cls.num_levels else 0
            weight, _ = harmonizing_weights(slot, counts, tot, loss_cls.acc_sum[row],
                                            loss_cls.momentum)
        else:
            weight, _ = harmonizing_weights(slot, counts, tot)
        beta[rows] = weight * label_weights[rows].unsqueeze(1)
    loss = bce.sum(1)
    effective = (beta * bce).sum(1) / loss.clamp(min=torch.finfo(loss.dtype).tiny)
    return loss, effective


class _Capture:
    """Stands in for the head's weighter: calls it and keeps what it saw and returned."""

    def __init__(self, weighter) -> None:
        self.weighter = weighter
        self.last: Optional[Dict[str, Tensor]] = None

    @property
    def progress(self) -> float:
        return getattr(self.weighter, 'progress', 0.0)

    def __call__(self, ctx) -> Tensor:
        weights = self.weighter(ctx)
        self.last = dict(loss=ctx.loss.detach(), logits=ctx.logits.detach(), labels=ctx.labels,
                         label_weights=ctx.label_weights, gt_noisy=ctx.extras['gt_noisy'],
                         weights=weights.detach(),
                         shapes=[f.shape for f in ctx.extras['cls_feats']])
        return weights


def _meta_hook_cfg(cfg: Config) -> Optional[dict]:
    for hook in cfg.get('custom_hooks', None) or []:
        if 'weighter' in hook:
            return hook
    return None


def _label_issue_hook_cfg(cfg: Config) -> Optional[dict]:
    for hook in cfg.get('custom_hooks', None) or []:
        # by name: the hook's module imports this one (the scores read its matched logits)
        if str(hook.get('type', '')).split('.')[-1] == 'LabelIssueHook':
            return hook
    return None


class AnchorDiagnostics:
    """Loads a detector from a config and a checkpoint (or ``'init'``: freshly initialised with
    ``seed``) and dumps per-anchor arrays for training batches (see the module docstring).
    ``with_weighter=False`` leaves a MetaReweightHook's weighter out (no hook, no clean loader):
    enough for :meth:`matched_logits`, not for the weights of :meth:`batch`."""

    def __init__(self, cfg: Config, checkpoint: str, seed: int = 0, device: str = 'cpu',
                 with_weighter: bool = True) -> None:
        self.cfg, self.seed, self.device = cfg, seed, device
        self.scope = cfg.get('default_scope', 'mmreweight')
        with DefaultScope.overwrite_default_scope(self.scope):
            set_random_seed(seed)
            self.model = MODELS.build(cfg.model)
            self.ckpt: Dict[str, Any] = {}
            if checkpoint == 'init':
                self.model.init_weights()
            else:
                self.ckpt = load_checkpoint(self.model, checkpoint, map_location='cpu')
            self.model.to(device).train()  # batch statistics in BN, as training sees the batch
            self.head = self.model.bbox_head
            self.loss_cls = self.head.loss_cls
            self.hook = self.clean_iter = None
            hook_cfg = _meta_hook_cfg(cfg)
            if hook_cfg is not None and with_weighter:
                self._setup_weighter(hook_cfg)
            self.label_issues = self._label_issue_hook()
        self.method = (type(self.hook.weighter).__name__ if self.hook is not None else
                       'GHMC' if isinstance(self.loss_cls, GHMC) else
                       'CBFocalLoss' if isinstance(self.loss_cls, CBFocalLoss) else 'none')

    def _setup_weighter(self, hook_cfg: dict) -> None:
        self.hook = HOOKS.build(hook_cfg)
        weighter = self.hook.weighter
        saved = self.ckpt.get(CHECKPOINT_KEY)
        if saved is not None and saved['type'] == type(weighter).__name__:
            if hasattr(weighter, 'load_meta_state_dict'):
                weighter.load_meta_state_dict(saved['state'])
            else:
                weighter.load_state_dict(saved['state']['weighter'])
        weighter.to(self.device).eval()  # e.g. MentorNet reads, does not move, its percentiles
        meta = self.ckpt.get('meta', {})
        max_iters = self.cfg.train_cfg.get('max_iters')
        weighter.progress = (min(meta.get('iter', 0) / max_iters, 1.0) if max_iters else 0.0)
        if hasattr(weighter, 'bind'):
            # one inner learning rate for theta: it cancels in L2RW's normalisation, and MW-Net
            # takes no meta step here
            weighter.bind(self.model, lr=float(self.cfg.optim_wrapper.optimizer.lr))
        # MW-Net's clean batch would take a meta step (train the VNet): its weights need none
        if self.hook.needs_clean and getattr(weighter, 'weights_from_clean_batch', True):
            loader = Runner.build_dataloader(self.hook.clean_dataloader_cfg, seed=self.seed)
            self.clean_iter = itertools.cycle(loader)
        self.head.weighter = _Capture(weighter)

    def _label_issue_hook(self):
        """The config's LabelIssueHook holding the flags the checkpoint saved, so that the
        batches carry the labels and marks training gave them at that iteration (without them
        a LabelIssueWeighter would weigh every anchor alike); None without such a hook or
        checkpoint."""
        finder_cfg = _label_issue_hook_cfg(self.cfg)
        if finder_cfg is None or not self.ckpt:
            return None
        finder = HOOKS.build(finder_cfg)
        finder.bind_dataset(self.train_loader().dataset)
        finder.load_state(self.ckpt)
        return finder

    def _weighter_batch(self, inputs, samples) -> Dict[str, Tensor]:
        if self.clean_iter is not None:
            clean = self.model.data_preprocessor(next(self.clean_iter), True)
            self.hook.weighter.prepare_clean(clean['inputs'], clean['data_samples'])
        self.model.loss(inputs, samples)  # the head calls the weighter (captured) in its loss
        got = dict(self.head.weighter.last)
        shapes = got.pop('shapes')
        # the head's targets carry no match; assign again (deterministic) to get them
        gts, ignores, metas = unpack_gt_instances(samples)
        matches = anchor_targets_at(self.head, [s[-2:] for s in shapes], got['labels'].device,
                                    gts, metas, ignores)
        if not torch.equal(matches['labels'], got['labels']):
            raise RuntimeError('the anchor assignment differs from the one the head trained with')
        return dict(got, gt_index=matches['gt_index'], gt_iou=matches['gt_iou'],
                    num_gts=matches['num_gts'],
                    levels=anchor_levels(shapes, self.head.num_base_priors),
                    priors=anchor_priors(shapes, self.head.num_base_priors))

    def _forward_targets(self, inputs, samples):
        """(anchor targets, (B * N, C) logits, per-level shapes) of a preprocessed batch."""
        cls_scores, _ = self.head(self.model.extract_feat(inputs))
        gts, ignores, metas = unpack_gt_instances(samples)
        t = anchor_targets(self.head, cls_scores, gts, metas, ignores)
        logits = flatten_levels(cls_scores, self.head.cls_out_channels)
        return t, logits, [s.shape for s in cls_scores]

    def matched_logits(self, data) -> Dict[str, Any]:
        """:func:`matched_logits` of this detector (its current train / eval mode)."""
        with DefaultScope.overwrite_default_scope(self.scope):
            return matched_logits(self.model, data)

    @torch.no_grad()
    def _loss_batch(self, inputs, samples) -> Dict[str, Tensor]:
        t, logits, shapes = self._forward_targets(inputs, samples)
        levels = anchor_levels(shapes, self.head.num_base_priors)
        if isinstance(self.loss_cls, GHMC):
            loss, weights = ghm_anchor_weights(self.loss_cls, logits, t['labels'],
                                               t['label_weights'], levels,
                                               isinstance(self.head, LevelAwareLossMixin))
        else:
            loss = self.loss_cls(logits, t['labels'], t['label_weights'],
                                 reduction_override='none')
            loss = loss.sum(1) if loss.dim() == 2 else loss
            if isinstance(self.loss_cls, CBFocalLoss):
                weights = self.loss_cls.class_weights.to(loss.device)[t['labels']]
                loss = loss / weights  # the loss the class weight multiplies
            else:
                weights = torch.ones_like(loss)
        weights = torch.where(t['label_weights'] > 0, weights, torch.zeros_like(weights))
        return dict(t, loss=loss, logits=logits, weights=weights, levels=levels,
                    priors=anchor_priors(shapes, self.head.num_base_priors))

    def batch(self, data) -> Dict[str, Any]:
        """Per-anchor arrays of the valid anchors of one training batch, and its histograms."""
        with DefaultScope.overwrite_default_scope(self.scope):
            data = self.model.data_preprocessor(data, True)
            inputs, samples = data['inputs'], data['data_samples']
            if self.label_issues is not None:
                self.label_issues.act_on(samples)
            out = (self._weighter_batch(inputs, samples) if self.hook is not None
                   else self._loss_batch(inputs, samples))
        labels, logits = out['labels'], out['logits'].float()
        num_classes = logits.shape[1]
        valid = out['label_weights'] > 0
        pos = valid & (labels >= 0) & (labels < num_classes)
        targets = one_hot_targets(labels, num_classes)
        g = bce_gradient_norm(logits, targets)
        elem_valid = valid.unsqueeze(1).expand_as(g)
        noisy = out['gt_noisy']
        hists = {
            'all': density_histogram(g, elem_valid),
            'target1': density_histogram(g, elem_valid & targets),
            'target1_clean': density_histogram(
                g, elem_valid & targets & (noisy == CLEAN_POSITIVE).unsqueeze(1)),
            'target1_noisy': density_histogram(
                g, elem_valid & targets & (noisy == NOISY_POSITIVE).unsqueeze(1)),
        }
        arrays = dict(loss=out['loss'][valid].detach().float(),
                      weight=out['weights'][valid].detach().float(), label=labels[valid],
                      pos=pos[valid], noisy=noisy[valid], level=out['levels'][valid],
                      prior=out['priors'][valid],
                      gt_index=out['gt_index'][valid], gt_iou=out['gt_iou'][valid].float())
        return dict({k: v.cpu().numpy() for k, v in arrays.items()}, hists=hists,
                    num_gts=int(out['num_gts']))

    def train_loader(self):
        with DefaultScope.overwrite_default_scope(self.scope):
            return Runner.build_dataloader(self.cfg.train_dataloader, seed=self.seed)

    @torch.no_grad()
    def _head_outputs_and_targets(self, batches: int):
        """For each of ``batches`` training batches: the head's per-level class scores and box
        predictions, and its ``get_targets`` (labels, label weights, box targets, box weights,
        number of positives), per level."""
        for data in itertools.islice(self.train_loader(), batches):
            data = self.model.data_preprocessor(data, True)
            cls_scores, bbox_preds = self.head(self.model.extract_feat(data['inputs']))
            gts, ignores, metas = unpack_gt_instances(data['data_samples'])
            anchors, valid = self.head.get_anchors([s.shape[-2:] for s in cls_scores], metas,
                                                   device=cls_scores[0].device)
            yield cls_scores, bbox_preds, self.head.get_targets(anchors, valid, gts, metas,
                                                                ignores)

    def ghmr_profile(self, batches: int) -> Dict[str, Any]:
        """:func:`~mmreweight.analysis.box_regression.ghmr_profile` of ``batches`` training batches
        (merged), with the head's GHM-R settings, or the paper's (mu 0.02, 10 bins, loss weight
        10) for another box loss: how GHM-R would weight this detector's box deltas."""
        loss_bbox = self.head.loss_bbox
        # mu='auto' before its calibration (an untrained detector) has no mu yet: the paper's
        mu = loss_bbox.current_mu() if isinstance(loss_bbox, GHMR) else None
        params = (dict(mu=mu or GHMR.PAPER_MU, bins=loss_bbox.bins,
                       loss_weight=loss_bbox.loss_weight)
                  if isinstance(loss_bbox, GHMR) else dict(mu=0.02, bins=10, loss_weight=10.0))
        if self.head.reg_decoded_bbox:
            raise ValueError('ghmr_profile needs a head that regresses encoded deltas '
                             '(reg_decoded_bbox=False)')
        parts = []
        with DefaultScope.overwrite_default_scope(self.scope):
            for _, bbox_preds, head_targets in self._head_outputs_and_targets(batches):
                _, _, targets, weights, avg_factor = head_targets
                # as the head calls its box loss: per level (GHM-R bins each level on its own),
                # or once over all levels for a joint-level head; targets are (B, A_l, 4) per
                # level, predictions (B, 4 A, H, W)
                calls = [(bbox_preds, targets, weights)] if isinstance(
                    self.head, JointLevelLossMixin) else [
                    ([p], [t], [w]) for p, t, w in zip(bbox_preds, targets, weights)]
                for preds, target, weight in calls:
                    with torch.enable_grad():
                        parts.append(box_regression.ghmr_profile(
                            flatten_levels(preds, 4), torch.cat(target, 1).reshape(-1, 4),
                            torch.cat(weight, 1).reshape(-1, 4), float(avg_factor), **params))
        return dict(box_regression.merge_profiles(parts, params['mu']), batches=batches,
                    bins=params['bins'], loss_weight=params['loss_weight'])

    def gradient_share(self, batches: int) -> Dict[str, Any]:
        """:func:`~mmreweight.analysis.gradient_share.classification_gradient_share` over
        ``batches`` training batches (magnitudes summed, then shared out) for focal loss and the
        head's classification loss, each called level by level and once over all levels. A GHM
        loss is rebuilt without momentum and warm-up: each batch's own density, fully harmonized."""
        loss_cfg = dict(self.cfg.model.bbox_head.loss_cls)
        if isinstance(self.loss_cls, GHMC):
            loss_cfg.update(momentum=0.0, warmup_iters=0)
        with DefaultScope.overwrite_default_scope(self.scope):
            losses = {'focal': MODELS.build(dict(type='mmreweight.FocalLoss', use_sigmoid=True,
                                                 gamma=2.0, alpha=0.25)),
                      'config': MODELS.build(loss_cfg)}
        sums: Dict[str, Dict[str, Any]] = {}
        with DefaultScope.overwrite_default_scope(self.scope), torch.no_grad():
            for cls_scores, _, head_targets in self._head_outputs_and_targets(batches):
                labels, label_weights, _, _, avg_factor = head_targets
                channels = self.head.cls_out_channels
                logits = [flatten_levels([s], channels) for s in cls_scores]
                for name, loss in losses.items():
                    for joint in (False, True):
                        share = classification_gradient_share(
                            loss, logits, [y.reshape(-1) for y in labels],
                            [w.reshape(-1) for w in label_weights], float(avg_factor), joint)
                        key = f"{name}_{'all_levels' if joint else 'per_level'}"
                        acc = sums.setdefault(key, dict(
                            positive=[0.0] * len(logits), negative=[0.0] * len(logits),
                            positives=[0] * len(logits)))
                        for level in range(len(logits)):
                            for kind in ('positive', 'negative'):
                                acc[kind][level] += share[kind][level] * share['total']
                            acc['positives'][level] += share['positives'][level]
        for acc in sums.values():
            total = sum(acc['positive']) + sum(acc['negative'])
            for kind in ('positive', 'negative'):
                acc[kind] = [round(v / total, 4) if total else 0.0 for v in acc[kind]]
        return dict(sums, batches=batches, loss=type(losses['config']).__name__)

    def clean_batch_agreement(self, data, clean_batches: int) -> Dict[str, Any]:
        """How much a meta weighter's weights of one training batch depend on which clean batch
        it drew: the positives' weights under ``clean_batches`` successive clean batches.

        Returns the mean over pairs of clean batches of the fraction of positives on which both
        agree whether the weight is zero (L2RW's clipping; 0.5 = a coin flip) and of the Pearson
        correlation of the weights, the clean-vs-noisy AUC of one clean batch's weights (mean
        over batches), of the weights averaged over all of them (about what a clean batch
        ``clean_batches`` times larger would give, up to the clipping) and of the last batch's
        weights (with ``clean_grad_momentum`` these come from the moving average over the
        draws), and the per-batch weights themselves. For L2RW: MW-Net's weights are VNet(loss),
        and no meta step is taken here, so they do not depend on the clean batch.
        """
        from mmreweight.weighting.mentornet.dd import roc_auc
        if self.clean_iter is None:
            raise ValueError('clean_batch_agreement needs a weighter whose weights come from '
                             f'the clean batch it draws (L2RW); {self.method} has none')
        if clean_batches < 2:
            raise ValueError(f'clean_batches must be >= 2, got {clean_batches}')
        with DefaultScope.overwrite_default_scope(self.scope):
            data = self.model.data_preprocessor(data, True)
            outs = [self._weighter_batch(data['inputs'], data['data_samples'])
                    for _ in range(clean_batches)]
        first = outs[0]
        pos = ((first['label_weights'] > 0) & (first['labels'] >= 0)
               & (first['labels'] < first['logits'].shape[1]))
        w = torch.stack([o['weights'][pos].detach().double() for o in outs])  # (K, P)
        noisy = first['gt_noisy'][pos]
        nonzero = w > ZERO_WEIGHT
        pairs = list(itertools.combinations(range(clean_batches), 2))
        agree = float(np.mean([(nonzero[i] == nonzero[j]).double().mean().item()
                               for i, j in pairs]))
        corr = float(np.nanmean([np.corrcoef(w[i].numpy(), w[j].numpy())[0, 1]
                                 for i, j in pairs]))
        out = dict(clean_batches=clean_batches, positives=int(pos.sum()),
                   noisy_positives=int((noisy == NOISY_POSITIVE).sum()),
                   zero_frac_pos=float((~nonzero).double().mean()),
                   zero_agreement=agree, weight_correlation=corr,
                   weights=w.numpy().astype(np.float32), noisy=noisy.cpu().numpy())
        sel = (noisy == CLEAN_POSITIVE) | (noisy == NOISY_POSITIVE)
        if (noisy == CLEAN_POSITIVE).any() and (noisy == NOISY_POSITIVE).any():
            is_clean = (noisy == CLEAN_POSITIVE)[sel]
            out['auc_one_clean_batch'] = float(np.mean(
                [roc_auc(w[k][sel], is_clean) for k in range(clean_batches)]))
            out['auc_averaged'] = roc_auc(w.mean(0)[sel], is_clean)
            out['auc_last'] = roc_auc(w[-1][sel], is_clean)
        return out

    def run(self, batches: int, max_negatives: Optional[int] = 20000) -> Dict[str, np.ndarray]:
        """Dump ``batches`` training batches; keep every positive and at most
        ``max_negatives`` random negatives (their fraction kept is ``neg_keep_frac``)."""
        loader = self.train_loader()
        if isinstance(self.loss_cls, CBFocalLoss) and not self.loss_cls.has_counts:
            # an untrained model: count the training set as ClassCountsHook would
            self.loss_cls.set_class_counts(
                count_instances_per_class(loader.dataset, self.loss_cls.num_classes))
        parts = [self.batch(data) for data in itertools.islice(loader, batches)]
        if not parts:
            raise ValueError('the training dataloader gave no batch')
        first_gt = np.cumsum([0] + [p['num_gts'] for p in parts[:-1]])
        for i, (part, first) in enumerate(zip(parts, first_gt)):
            # number annotations across the batches; keep which batch an anchor came from
            part['gt_index'] = np.where(part['gt_index'] >= 0, part['gt_index'] + first, -1)
            part['batch'] = np.full(len(part['gt_index']), i, dtype=np.int16)
        cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]
               if k not in ('hists', 'num_gts')}
        neg = np.flatnonzero(~cat['pos'])
        keep_frac = 1.0
        if max_negatives is not None and len(neg) > max_negatives:
            rng = np.random.default_rng(self.seed)
            drop = np.setdiff1d(neg, rng.choice(neg, max_negatives, replace=False))
            keep_frac = max_negatives / len(neg)
            cat = {k: np.delete(v, drop) for k, v in cat.items()}
        out = dict(cat, loss=cat['loss'].astype(np.float32),
                   weight=cat['weight'].astype(np.float32), label=cat['label'].astype(np.int16),
                   noisy=cat['noisy'].astype(np.int8), level=cat['level'].astype(np.int8),
                   prior=cat['prior'].astype(np.int8), batch=cat['batch'],
                   gt_index=cat['gt_index'].astype(np.int32),
                   gt_iou=cat['gt_iou'].astype(np.float32),
                   neg_keep_frac=np.float64(keep_frac))
        for name in HISTOGRAMS:
            out[f'hist_{name}'] = np.sum([p['hists'][name] for p in parts], axis=0)
        out['hist_edges'] = ghm_edges(HIST_BINS, 1.0).numpy()
        if isinstance(self.loss_cls, CBFocalLoss):
            out['cb_class_counts'] = self.loss_cls.class_counts.cpu().numpy()
            out['cb_class_weights'] = self.loss_cls.class_weights[:-1].cpu().numpy()
        if isinstance(self.loss_cls, GHMC) and self.loss_cls.momentum > 0:
            out['ghm_acc_sum'] = self.loss_cls.acc_sum.cpu().numpy()
        return out


def summarize(dump: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """Mean weight of negatives and of clean / noisy positives, the fraction of (near-)zero
    weights (of all anchors and of positives), and how well the weights rank clean above noisy
    positives (ROC AUC of the weight as a clean-vs-noisy score: 0.5 = blind, 1 = every clean
    positive above every noisy one). For comparison, the AUC of the negative loss: how well the
    small-loss criterion alone (no meta step) would tell them apart. With the matches in the
    dump, also :func:`box_zeroing` of the clean and of the noisy positives (keys ``*_clean``,
    ``*_noisy``); with the anchors' shapes and batches, also :func:`shape_gating`."""
    from mmreweight.weighting.mentornet.dd import roc_auc
    w, pos, noisy = dump['weight'], dump['pos'].astype(bool), dump['noisy']
    clean_pos, noisy_pos = pos & (noisy == CLEAN_POSITIVE), pos & (noisy == NOISY_POSITIVE)

    def mean(mask, values=w):
        return float(values[mask].mean()) if mask.any() else None

    out = dict(anchors=int(len(w)), positives=int(pos.sum()), noisy_positives=int(noisy_pos.sum()),
               mean_weight_neg=mean(~pos), mean_weight_pos_clean=mean(clean_pos),
               mean_weight_pos_noisy=mean(noisy_pos),
               zero_weight_frac=float((w < ZERO_WEIGHT).mean()) if len(w) else None,
               zero_weight_frac_pos=mean(pos, (w < ZERO_WEIGHT).astype(np.float64)),
               mean_loss_pos_clean=mean(clean_pos, dump['loss']),
               mean_loss_pos_noisy=mean(noisy_pos, dump['loss']))
    if clean_pos.any() and noisy_pos.any():
        sel = clean_pos | noisy_pos
        is_clean = torch.from_numpy(clean_pos[sel])
        out['auc_weight_clean_vs_noisy'] = roc_auc(torch.from_numpy(w[sel].astype(np.float64)),
                                                   is_clean)
        out['auc_small_loss_clean_vs_noisy'] = roc_auc(
            torch.from_numpy(-dump['loss'][sel].astype(np.float64)), is_clean)
    if 'gt_index' in dump:  # dumps that hold the matches (older study records do not)
        for name, code in (('clean', CLEAN_POSITIVE), ('noisy', NOISY_POSITIVE)):
            out.update({f'{key}_{name}': value for key, value in
                        box_zeroing(dump, pos & (noisy == code)).items()})
    if 'prior' in dump and 'batch' in dump:  # older study records lack them
        out.update(shape_gating(dump))
    return out


def box_zeroing(dump: Dict[str, np.ndarray], positives: np.ndarray) -> Dict[str, Any]:
    """Whether the weights select annotations or anchors within them: of the annotations of the
    ``positives`` mask, the share with every anchor's weight (near) zero and the share with
    some zeroed and some kept, and the mean rank correlation of weight and IoU among one
    annotation's anchors (Spearman, ties averaged; annotations with 3+ anchors whose weights and
    IoUs both vary)."""
    from scipy.stats import spearmanr
    index, weight, iou = (dump[k][positives] for k in ('gt_index', 'weight', 'gt_iou'))
    zero = weight < ZERO_WEIGHT
    all_zero, partly, corr = [], [], []
    for gt in np.unique(index):
        mine = index == gt
        all_zero.append(zero[mine].all())
        partly.append(zero[mine].any() and not zero[mine].all())
        if mine.sum() >= 3 and np.ptp(weight[mine]) > 0 and np.ptp(iou[mine]) > 0:
            corr.append(spearmanr(weight[mine], iou[mine])[0])
    return dict(annotations=len(all_zero),
                annotations_all_zeroed=float(np.mean(all_zero)) if all_zero else None,
                annotations_partly_zeroed=float(np.mean(partly)) if partly else None,
                weight_iou_rank_corr=float(np.mean(corr)) if corr else None)


def shape_gating(dump: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """Whether the positives' zero weights act per batch, class and anchor shape: with theta =
    the classification output conv (shared over FPN levels), an anchor's alignment with the
    clean gradient uses only its (shape, class) output channels, so one clean batch can zero a
    whole (batch, class, shape) cell. Reports, over pairs of positives of different annotations
    in one batch and class, the share that agree on being zeroed or kept when their shapes are
    the same and when they differ; and the zeroed share of clean and of noisy positives (mean
    over cells) within the (batch, class, shape) cells that hold both."""
    pos = dump['pos'].astype(bool)
    zero = dump['weight'][pos] < ZERO_WEIGHT
    batch, label, prior, index, noisy = (dump[k][pos] for k in
                                         ('batch', 'label', 'prior', 'gt_index', 'noisy'))
    agree = dict(same=[0, 0], other=[0, 0])  # agreeing pairs, pairs
    for b, c in sorted(set(zip(batch.tolist(), label.tolist()))):
        k = (batch == b) & (label == c)
        n = int(k.sum())
        # each unordered pair once
        other_box = (index[k][:, None] != index[k][None, :]) & np.triu(np.ones((n, n), bool), 1)
        same_shape = prior[k][:, None] == prior[k][None, :]
        agrees = zero[k][:, None] == zero[k][None, :]
        for key, pairs in (('same', other_box & same_shape), ('other', other_box & ~same_shape)):
            agree[key][0] += int(agrees[pairs].sum())
            agree[key][1] += int(pairs.sum())
    clean_share, noisy_share = [], []
    # sorted: a fixed summation order, so a rerun writes the same floats
    for cell in sorted(set(zip(batch.tolist(), label.tolist(), prior.tolist()))):
        k = (batch == cell[0]) & (label == cell[1]) & (prior == cell[2])
        k_clean, k_noisy = k & (noisy == CLEAN_POSITIVE), k & (noisy == NOISY_POSITIVE)
        if k_clean.any() and k_noisy.any():
            clean_share.append(zero[k_clean].mean())
            noisy_share.append(zero[k_noisy].mean())
    out = {f'zero_agreement_{key}_shape': n_agree / n if n else None
           for key, (n_agree, n) in agree.items()}
    return dict(out, zero_agreement_pairs=agree['same'][1] + agree['other'][1],
                mixed_cells=len(clean_share),
                zero_frac_clean_in_mixed_cells=float(np.mean(clean_share)) if clean_share else None,
                zero_frac_noisy_in_mixed_cells=float(np.mean(noisy_share)) if noisy_share else None)


__all__ = ['HIST_BINS', 'HISTOGRAMS', 'density_histogram', 'anchor_levels', 'anchor_priors',
           'anchor_targets', 'matched_logits', 'flatten_levels', 'ghm_anchor_weights',
           'AnchorDiagnostics', 'summarize', 'box_zeroing', 'shape_gating']
