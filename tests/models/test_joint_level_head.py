"""JointLevelRetinaHead: one loss call over the anchors of all FPN levels.

Losses summed over anchors and divided by the number of positives (focal, L1) are those of mmdet's
RetinaHead; GHM's are mmdet's GHMC/GHMR applied to every level's flattened outputs and targets
concatenated per image (the density over all examples), which differ from the per-level sum."""
import pytest
import torch
from mmdet.models.losses import GHMC as MMDetGHMC
from mmdet.models.losses import GHMR as MMDetGHMR
from mmdet.models.utils import images_to_levels, unpack_gt_instances

import mmreweight  # noqa: F401
from mmreweight.losses import GHMC, GHMR
from mmreweight.testing.tiny_retinanet import build_tiny_retinanet, synthetic_batch


def pair(dtype=torch.float64):
    """The same detector with mmdet's RetinaHead and with JointLevelRetinaHead."""
    stock = build_tiny_retinanet(dtype, head_type='RetinaHead')
    joint = build_tiny_retinanet(dtype, head_type='mmreweight.JointLevelRetinaHead')
    joint.load_state_dict(stock.state_dict())
    return stock, joint


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_focal_and_l1_losses_equal_retinahead(dtype, tol):
    stock, joint = pair(dtype)
    inputs, samples = synthetic_batch(dtype=dtype, seed=5)
    ref, ours = stock.loss(inputs, samples), joint.loss(inputs, samples)
    for key in ('loss_cls', 'loss_bbox'):
        assert torch.allclose(ours[key], sum(ref[key]), rtol=tol, atol=0)
    ref_total = sum(sum(ref[k]) for k in ('loss_cls', 'loss_bbox'))
    grads_ref = torch.autograd.grad(ref_total, list(stock.parameters()))
    grads = torch.autograd.grad(ours['loss_cls'] + ours['loss_bbox'], list(joint.parameters()))
    for a, b in zip(grads_ref, grads):
        assert torch.allclose(a, b, rtol=1e3 * tol, atol=1e3 * tol * a.abs().max())


def flattened_outputs_and_targets(model, inputs, samples):
    """Every level's logits, box deltas and targets, flattened and concatenated per image by hand
    (not through the head's own helper)."""
    head = model.bbox_head
    cls_scores, bbox_preds = head(model.extract_feat(inputs))
    gts, ignored, metas = unpack_gt_instances(samples)
    anchors, valid = head.get_anchors([c.shape[-2:] for c in cls_scores], metas, device='cpu')
    labels, label_weights, box_targets, box_weights, _ = head.get_targets(anchors, valid, gts,
                                                                          metas, ignored)
    num_images, num_classes = len(metas), head.cls_out_channels
    per_image = lambda levels, width: torch.cat(  # noqa: E731
        [lvl.reshape(num_images, -1, width) for lvl in levels], 1).reshape(-1, width)
    logits = per_image([c.permute(0, 2, 3, 1) for c in cls_scores], num_classes)
    deltas = per_image([b.permute(0, 2, 3, 1) for b in bbox_preds], 4)
    return (logits, per_image(labels, 1).view(-1), per_image(label_weights, 1).view(-1),
            deltas, per_image(box_targets, 4), per_image(box_weights, 4), cls_scores, labels)


def test_ghm_density_is_counted_over_all_levels():
    stock, joint = pair()
    head = joint.bbox_head
    head.loss_cls = GHMC(bins=10, momentum=0.0, paper_exact=True)
    head.loss_bbox = GHMR(mu=0.02, bins=10, momentum=0.0, paper_exact=True)
    inputs, samples = synthetic_batch(dtype=torch.float64, seed=6, boxes_per_image=4)
    ours = joint.loss(inputs, samples)
    logits, labels, label_weights, deltas, box_targets, box_weights, cls_scores, level_labels = \
        flattened_outputs_and_targets(joint, inputs, samples)
    ref_cls = MMDetGHMC(bins=10, momentum=0.0, use_sigmoid=True)(logits, labels, label_weights)
    ref_box = MMDetGHMR(mu=0.02, bins=10, momentum=0.0)(deltas, box_targets, box_weights)
    # GHM counts its bins in float32, as mmreweight's GHM tests allow for
    assert torch.allclose(ours['loss_cls'], ref_cls, rtol=1e-6, atol=0)
    assert torch.allclose(ours['loss_bbox'], ref_box, rtol=1e-6, atol=0)
    # level by level the loss is another one: each level's is a mean over its own bins
    sizes = [lvl.shape[1] for lvl in level_labels]
    split = lambda t: images_to_levels(list(t.view(2, -1, *t.shape[1:])), sizes)  # noqa: E731
    per_level = sum(MMDetGHMC(bins=10, momentum=0.0, use_sigmoid=True)(
        x.reshape(-1, logits.shape[1]), y.reshape(-1), w.reshape(-1))
        for x, y, w in zip(split(logits), split(labels), split(label_weights)))
    assert not torch.allclose(ours['loss_cls'], per_level, rtol=1e-3)
