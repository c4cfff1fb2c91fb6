"""ThetaView's clean-gradient computations agree with plain autograd on the whole clean batch."""
import pytest
import torch

import mmreweight  # noqa: F401
from mmreweight.engine.meta_testing import build_tiny_retinanet, synthetic_batch
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
