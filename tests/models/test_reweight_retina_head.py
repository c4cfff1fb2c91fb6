"""ReweightRetinaHead: uniform weights give RetinaHead's loss; weights give sum m_a l_a / avg."""
import pytest
import torch
from mmdet.models.utils import unpack_gt_instances

import mmreweight  # noqa: F401
from mmreweight.testing.tiny_retinanet import build_tiny_retinanet, synthetic_batch
from mmreweight.models.reweight_retina_head import (CLEAN_POSITIVE, NOISY_POSITIVE,
                                                    NOT_POSITIVE)
from mmreweight.weighting.base import AnchorWeighter


class FixedWeighter(AnchorWeighter):
    """Returns given weights (or uniform mean-one ones) and records the context."""

    def __init__(self, weights=None, requires_grad=False):
        super().__init__()
        self.weights, self.ctx = weights, None
        self.scale = torch.nn.Parameter(torch.ones(()), requires_grad=requires_grad)

    def forward(self, ctx):
        self.ctx = ctx
        w = self.normalise_mean_one(torch.ones_like(ctx.loss), ctx.valid) \
            if self.weights is None else self.weights
        return w * self.scale


def stock_copy(model):
    """The same detector (same parameters and buffers) with mmdet's RetinaHead."""
    stock = build_tiny_retinanet(next(model.parameters()).dtype, head_type='RetinaHead')
    stock.load_state_dict(model.state_dict())
    assert type(stock.bbox_head).__name__ == 'RetinaHead'
    return stock


def total(losses):
    return sum(sum(v) if isinstance(v, (list, tuple)) else v for k, v in losses.items()
               if 'loss' in k)


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_uniform_weights_reproduce_retinahead(dtype, tol):
    model = build_tiny_retinanet(dtype)
    stock = stock_copy(model)
    inputs, samples = synthetic_batch(dtype=dtype, seed=3)
    ref = stock.loss(inputs, samples)
    model.bbox_head.weighter = FixedWeighter()
    ours = model.loss(inputs, samples)
    ref_cls, ref_box = sum(ref['loss_cls']), sum(ref['loss_bbox'])
    assert torch.allclose(ours['loss_cls'], ref_cls, rtol=tol, atol=0)
    assert torch.allclose(ours['loss_bbox'], ref_box, rtol=tol, atol=0)
    # same gradients too
    g_ref = torch.autograd.grad(total(ref), list(stock.parameters()), allow_unused=True)
    g_our = torch.autograd.grad(total(ours), list(model.parameters()), allow_unused=True)
    for a, b in zip(g_ref, g_our):
        if a is not None:
            assert torch.allclose(a, b, rtol=1e3 * tol, atol=1e3 * tol * a.abs().max())
    # no weighter: the inherited path
    model.bbox_head.weighter = None
    plain = model.loss(inputs, samples)
    assert torch.allclose(sum(plain['loss_cls']), ref_cls, rtol=tol)


def test_weights_enter_per_anchor_in_flattening_order():
    """Random weights == mmdet's FocalLoss with per-anchor weight label_weight * m, level by level.
    This fails if the flattened order of weights, logits and targets disagree."""
    model = build_tiny_retinanet(torch.float64)
    head = model.bbox_head
    inputs, samples = synthetic_batch(dtype=torch.float64, seed=4)
    x = model.extract_feat(inputs)
    cls_scores, bbox_preds = head(x)
    gts, ign, metas = unpack_gt_instances(samples)
    sizes = [c.shape[-2:] for c in cls_scores]
    anchors, valid_flags = head.get_anchors(sizes, metas, device='cpu')
    labels, label_weights, _, _, avg = head.get_targets(anchors, valid_flags, gts, metas, ign)
    g = torch.Generator().manual_seed(0)
    per_level = [torch.rand(lab.shape, generator=g, dtype=torch.float64) for lab in labels]
    expected = 0
    for score, lab, lw, m in zip(cls_scores, labels, label_weights, per_level):
        z = score.permute(0, 2, 3, 1).reshape(-1, head.cls_out_channels)
        expected = expected + head.loss_cls(z, lab.reshape(-1), (lw * m).reshape(-1),
                                            avg_factor=avg)
    flat = torch.cat(per_level, 1).reshape(-1)  # image-major, levels concatenated
    head.weighter = FixedWeighter(flat)
    ours = head.loss(x, samples)
    assert torch.allclose(ours['loss_cls'], expected, rtol=1e-12)


def test_weights_are_detached_and_context_is_complete():
    model = build_tiny_retinanet(torch.float64)
    inputs, samples = synthetic_batch(dtype=torch.float64, seed=5, noisy_fraction=0.5)
    weighter = FixedWeighter(requires_grad=True)
    model.bbox_head.weighter = weighter
    losses = model.loss(inputs, samples)
    total(losses).backward()
    assert weighter.scale.grad is None  # nothing flows into the weighter
    # the weighter is not part of the detector
    assert not any('weighter' in k for k in model.state_dict())
    assert all(p is not weighter.scale for p in model.parameters())
    ctx = weighter.ctx
    n = ctx.loss.numel()
    assert ctx.logits.shape == (n, 3) and ctx.labels.shape == (n, )
    assert len(ctx.extras['cls_feats']) == 3 and ctx.extras['cls_feats'][0].shape[1] == 16
    flags = ctx.extras['gt_noisy']
    pos = ctx.labels < 3
    assert bool(((flags != NOT_POSITIVE) == pos).all())
    assert bool((flags == NOISY_POSITIVE).any()) and bool((flags == CLEAN_POSITIVE).any())
    stats = model.bbox_head.last_weight_stats
    assert stats['meta_w_pos'] == pytest.approx(1.0) and stats['meta_w_neg'] == pytest.approx(1.0)
    assert stats['meta_w_zero_frac'] == 0 and 'meta_w_noisy' in stats


def test_noisy_flags_follow_the_assigned_annotation():
    model = build_tiny_retinanet(torch.float64)
    inputs, samples = synthetic_batch(dtype=torch.float64, seed=6, boxes_per_image=2)
    for s in samples:  # first box noisy, second clean; give them different labels to tell apart
        s.gt_instances.noisy = torch.tensor([True, False])
        s.gt_instances.labels = torch.tensor([0, 1])
    weighter = FixedWeighter()
    model.bbox_head.weighter = weighter
    model.loss(inputs, samples)
    ctx = weighter.ctx
    flags, labels = ctx.extras['gt_noisy'], ctx.labels
    assert bool((flags[labels == 0] == NOISY_POSITIVE).all())
    assert bool((flags[labels == 1] == CLEAN_POSITIVE).all())


def test_annotation_index_numbers_annotations_through_the_batch():
    model = build_tiny_retinanet(torch.float64)
    inputs, samples = synthetic_batch(dtype=torch.float64, seed=7, num_images=3,
                                      boxes_per_image=3)
    for s in samples:  # annotation j of image i has label j and number 3 i + j ...
        s.gt_instances.labels = torch.tensor([0, 1, 2])
    weighter = FixedWeighter()
    model.bbox_head.weighter = weighter
    model.loss(inputs, samples)
    ctx = weighter.ctx
    index, labels = ctx.extras['targets'].gt_index, ctx.labels
    n = labels.numel() // 3  # anchors per image
    positive = labels < 3
    assert bool(((index >= 0) == positive).all())
    # ... so the number gives back the image (block of rows) and the label of the annotation
    rows = positive.nonzero().squeeze(1)
    assert torch.equal(index[rows] // 3, rows // n)
    assert torch.equal(index[rows] % 3, labels[rows])
    assert len(set((index[rows] // 3).tolist())) == 3


def test_bad_weight_shape_is_an_error():
    model = build_tiny_retinanet(torch.float64)
    inputs, samples = synthetic_batch(dtype=torch.float64)
    model.bbox_head.weighter = FixedWeighter(torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match='shape'):
        model.loss(inputs, samples)


class DlossWeighter(FixedWeighter):
    """Random weights; takes dl/dz of every anchor as the meta weighters do (or not)."""

    def __init__(self, weights, take_dloss):
        super().__init__(weights)
        self.take_dloss = take_dloss

    def forward(self, ctx):
        if self.take_dloss:
            from mmreweight.weighting.alignment import dloss_dlogits
            dloss_dlogits(ctx)
        return super().forward(ctx)


@pytest.mark.parametrize('loss_type', ['mmreweight.FocalLoss', 'mmreweight.GHMC'])
def test_loss_from_the_weighters_dloss_has_the_autograd_value_and_gradients(loss_type):
    """Given dl/dz from the weighter, the classification loss attaches w dl/dz / avg to the logits
    directly; value and every parameter gradient equal the autograd path's."""
    out = {}
    for take in (False, True):
        model = build_tiny_retinanet(torch.float64,
                                     loss_cls=dict(type=loss_type, use_sigmoid=True))
        inputs, samples = synthetic_batch(dtype=torch.float64, seed=6)
        model.bbox_head.weighter = FixedWeighter()  # to learn the number of anchors
        model.loss(inputs, samples)
        n = model.bbox_head.weighter.ctx.loss.numel()
        weights = torch.rand(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        model.bbox_head.weighter = DlossWeighter(weights, take)
        losses = model.loss(inputs, samples)
        assert ('dloss_dlogits' in model.bbox_head.weighter.ctx.extras) == take
        grads = torch.autograd.grad(losses['loss_cls'], list(model.parameters()),
                                    allow_unused=True)
        out[take] = losses['loss_cls'].detach(), grads
    assert torch.equal(out[True][0], out[False][0])
    checked = 0
    for a, b in zip(out[False][1], out[True][1]):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-14)
            checked += int(float(a.abs().max()) > 0)
    assert checked > 5
