"""ThetaView's clean-gradient computations agree with plain autograd on the whole clean batch."""
import pytest
import torch

import mmreweight  # noqa: F401
from mmreweight.testing.tiny_retinanet import build_tiny_retinanet, synthetic_batch
from mmreweight.weighting.alignment import ThetaView, build_theta_view


@pytest.mark.parametrize('chunks', [1, 3, 8, 10_000])
@pytest.mark.parametrize('loss_type', ['mmreweight.FocalLoss', 'mmreweight.CBFocalLoss'])
def test_chunked_clean_gradient_equals_whole_batch_autograd(chunks, loss_type):
    loss_cfg = dict(type=loss_type, use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)
    if loss_type == 'mmreweight.CBFocalLoss':
        loss_cfg = dict(type=loss_type, num_classes=3, class_counts=[50, 10, 2], beta=0.999,
                        loss_type='focal', use_sigmoid=True)
    model = build_tiny_retinanet(torch.float64, loss_cls=loss_cfg)
    view = build_theta_view(model, 'cls_out')
    view.clean_chunks = chunks
    view.prepare_clean(*synthetic_batch(dtype=torch.float64, seed=2))
    theta = [p.detach() + 0.01 for p in view.params]  # a look-ahead point, not the model's own
    loss, grads = view.clean_loss_and_grad(theta)
    ref_loss, ref_grads = ThetaView.clean_loss_and_grad(view, [t.requires_grad_() for t in theta])
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-14)
        assert float(r.abs().max()) > 0


def test_a_loss_that_couples_anchors_is_not_chunked():
    model = build_tiny_retinanet(torch.float64, loss_cls=dict(type='mmreweight.GHMC', bins=10))
    view = build_theta_view(model, 'cls_out')
    view.prepare_clean(*synthetic_batch(dtype=torch.float64, seed=2))
    theta = [p.detach().clone().requires_grad_() for p in view.params]
    loss, grads = view.clean_loss_and_grad(theta)
    ref = torch.autograd.grad(view.clean_loss(theta), theta)
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, rtol=0, atol=0)


def _training_ctx(model, loss_cls=None):
    """The AnchorLossContext of one training forward (captured by a weighter that returns ones)."""
    from mmreweight.weighting.base import AnchorWeighter

    class Capture(AnchorWeighter):
        def forward(self, ctx):
            self.ctx = ctx
            return torch.ones_like(ctx.loss)

    capture = Capture()
    model.bbox_head.weighter = capture
    model.loss(*synthetic_batch(dtype=torch.float64, seed=1, boxes_per_image=4))
    model.bbox_head.weighter = None
    return capture.ctx


@pytest.mark.parametrize('loss_type', ['mmreweight.FocalLoss', 'mmreweight.GHMC'])
def test_alignments_of_some_anchors_equal_rows_of_all(loss_type):
    """The row-restricted path (gathered receptive fields, loss re-evaluated on those anchors) gives
    the rows of the full computation; for GHM-C (anchors coupled) it falls back to the full one."""
    model = build_tiny_retinanet(torch.float64, loss_cls=dict(type=loss_type, use_sigmoid=True))
    view = build_theta_view(model, 'cls_out')
    ctx = _training_ctx(model)
    v = [torch.randn_like(p) for p in view.params]
    full = view.alignment(ctx, v)
    ctx.extras.pop('dloss_dlogits')  # the row path must not just index a cached full gradient
    fg = (ctx.valid & (ctx.labels < ctx.num_classes)).nonzero().squeeze(1)
    rows = torch.cat([fg, torch.randperm(ctx.loss.numel(), generator=torch.Generator()
                                         .manual_seed(0))[:50]])  # every level and image
    assert fg.numel() > 3
    torch.testing.assert_close(view.logit_tangent_rows(ctx, v, rows),
                               view.logit_tangent(ctx, v)[rows], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(view.alignment(ctx, v, rows), full[rows], rtol=1e-10, atol=1e-14)
    assert float(full[fg].abs().min()) > 0
    assert view.alignment(ctx, v, rows[:0]).shape == (0, )


def test_flat_anchor_positions_invert_flatten_levels():
    from mmreweight.weighting.levels import flat_anchor_positions, flatten_levels
    sizes, anchors, batch = [(5, 7), (3, 4), (1, 2)], 3, 2
    # per level a map whose value at (image, anchor, y, x) encodes its own position
    maps = []
    for lvl, (h, w) in enumerate(sizes):
        b, a, y, x = torch.meshgrid(torch.arange(batch), torch.arange(anchors), torch.arange(h),
                                    torch.arange(w), indexing='ij')
        code = torch.stack([b, torch.full_like(b, lvl), y, x, a], -1)  # (B, A, H, W, 5)
        maps.append(code.permute(0, 1, 4, 2, 3).reshape(batch, anchors * 5, h, w))
    flat = flatten_levels(maps, 5)
    rows = torch.arange(flat.size(0))
    got = torch.stack(flat_anchor_positions(rows, sizes, anchors), 1)
    assert torch.equal(got, flat)
