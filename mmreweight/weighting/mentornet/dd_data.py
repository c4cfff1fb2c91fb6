"""MentorNet-DD training data from a detector on clean images (what ``tools/train_mentornet_dd.py``
collects).

For each clean batch: one forward of the detector, then anchor targets twice — under the true
ground-truth labels and under a corrupted copy (uniform or pair-flip, the benchmark's own
:func:`mmreweight.datasets.label_noise.flip_labels`). Boxes are unchanged, so the anchor-to-box
assignment is the same and an anchor's label changed iff its box's label was flipped. Recorded per
anchor, under the corrupted labels:

* ``loss``   ℓ = Σ_c loss_cls(z_c, y_c) · λ (``reduction='none'``, λ the label weight) — the same
  per-anchor loss the reweighting head hands its weighter;
* ``is_pos`` foreground under the (corrupted) target;
* ``clean``  1[corrupted label = true label] — the DD target.

All valid positives are kept (the corruption lives there); negatives — always clean, ~10⁵ per
image — are subsampled to ``neg_per_image`` uniformly, which leaves their percentile unbiased.
"""
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmengine.structures import InstanceData
from torch import Tensor

from mmreweight.datasets.label_noise import flip_labels


def corrupt_instances(batch_gt_instances: Sequence[InstanceData], noise_type: str,
                      noise_rate: float, num_classes: int,
                      rng: np.random.Generator) -> List[InstanceData]:
    """Copies of the ground truth with ``round(rate · #boxes)`` labels of the batch flipped."""
    counts = [len(g) for g in batch_gt_instances]
    labels = np.concatenate([g.labels.cpu().numpy() for g in batch_gt_instances]) \
        if counts else np.zeros(0, dtype=np.int64)
    noisy = np.split(flip_labels(labels, noise_type, noise_rate, num_classes, rng),
                     np.cumsum(counts)[:-1])
    out = []
    for g, lab in zip(batch_gt_instances, noisy):
        c = g.clone()
        c.labels = torch.as_tensor(lab, dtype=g.labels.dtype, device=g.labels.device)
        out.append(c)
    return out


def anchor_cls_losses(head, cls_scores: Sequence[Tensor], batch_gt_instances,
                      batch_img_metas: List[dict]):
    """Per-anchor targets and classification loss of an mmdet ``AnchorHead`` for a batch.

    Returns ``(loss, labels, label_weights)``, each (B, A) with the levels' anchors concatenated.
    """
    batch, num_ch = cls_scores[0].size(0), head.cls_out_channels
    featmap_sizes = [s.shape[-2:] for s in cls_scores]
    anchors, valid_flags = head.get_anchors(featmap_sizes, batch_img_metas,
                                            device=cls_scores[0].device)
    targets = head.get_targets(anchors, valid_flags, batch_gt_instances, batch_img_metas)
    labels, label_weights = torch.cat(targets[0], 1), torch.cat(targets[1], 1)
    logits = torch.cat([s.permute(0, 2, 3, 1).reshape(batch, -1, num_ch) for s in cls_scores], 1)
    loss = head.loss_cls(logits.reshape(-1, num_ch), labels.reshape(-1),
                         label_weights.reshape(-1), reduction_override='none')
    if loss.dim() == 2:
        loss = loss.sum(1)
    return loss.reshape(batch, -1), labels, label_weights


@torch.no_grad()
def collect_dd_batch(model, data: dict, noise_type: str, noise_rate: float,
                     rng: np.random.Generator, neg_per_image: int = 256,
                     generator: torch.Generator = None) -> Dict[str, Tensor]:
    """DD records of one dataloader batch (see the module docstring): dict of (M,) CPU tensors
    ``loss``, ``is_pos``, ``clean`` and ``index`` (image · anchors per image + anchor)."""
    data = model.data_preprocessor(data, False)
    samples = data['data_samples']
    metas = [s.metainfo for s in samples]
    true_gt = [s.gt_instances for s in samples]
    head = model.bbox_head
    cls_scores, _ = head(model.extract_feat(data['inputs']))
    noisy_gt = corrupt_instances(true_gt, noise_type, noise_rate, head.num_classes, rng)
    _, labels_true, _ = anchor_cls_losses(head, cls_scores, true_gt, metas)
    loss, labels, label_weights = anchor_cls_losses(head, cls_scores, noisy_gt, metas)

    keep = []
    for i in range(len(samples)):
        valid = label_weights[i] > 0
        pos = valid & (labels[i] < head.num_classes)
        neg = (valid & ~pos).nonzero().squeeze(1).cpu()
        neg = neg[torch.randperm(len(neg), generator=generator)[:neg_per_image]]
        keep.append(torch.cat([pos.nonzero().squeeze(1).cpu(), neg]) + i * labels.size(1))
    keep = torch.cat(keep)

    def flat(t):
        return t.reshape(-1).cpu()[keep]

    return dict(loss=flat(loss).float(), is_pos=flat(labels) < head.num_classes,
                clean=flat(labels) == flat(labels_true), index=keep)


__all__ = ['corrupt_instances', 'anchor_cls_losses', 'collect_dd_batch']
