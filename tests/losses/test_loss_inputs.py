"""What every loss shares: registry names, bad input -> ValueError naming the argument, and
half-precision inputs."""
import pytest
import torch
from mmdet.registry import MODELS

import mmreweight  # noqa: F401  (registers the losses)
from mmreweight.losses import frozen_loss_statistics
from loss_testing import make_cls_batch

CLS_LOSSES = {
    'FocalLoss': dict(),
    'GHMC': dict(bins=10, momentum=0.75),
    'CBFocalLoss': dict(num_classes=7, class_counts=[5, 50, 500, 1, 2, 3, 4]),
    'CBFocalLoss-sigmoid': dict(num_classes=7, class_counts=[5, 50, 500, 1, 2, 3, 4],
                                loss_type='sigmoid'),
}


def build(name, **kwargs):
    return MODELS.build(dict({**CLS_LOSSES.get(name, {}), **kwargs},
                             type='mmreweight.' + name.split('-')[0]))


def double_batch(name):
    """Small float64 inputs (pred, target, weight) for ``name``."""
    if name == 'GHMR':
        g = torch.Generator().manual_seed(0)
        pred, target = (torch.randn(12, 4, generator=g, dtype=torch.float64) * 0.1
                        for _ in range(2))
        return pred, target, torch.ones(12, 4, dtype=torch.float64)
    logits, labels, w = make_cls_batch(n=12, c=7, seed=4, dtype=torch.float64)
    return logits, labels, w.double()


@pytest.mark.parametrize('name', [*CLS_LOSSES, 'GHMR'])
def test_registered_losses_have_the_second_derivative_they_declare(name):
    # mmdet's registry resolves the scoped name to mmreweight's class
    loss = build(name)
    assert type(loss).__module__.startswith('mmreweight.losses')
    # Meta-reweighting differentiates through a look-ahead step of a loss that declares
    # twice_differentiable: its analytic second derivative must match finite differences.
    pred, target, weight = double_batch(name)
    loss(pred, target, weight)  # GHM's moving averages start; the check runs with them frozen
    x = pred.clone().requires_grad_(True)
    with frozen_loss_statistics(loss):
        second_derivative_ok = torch.autograd.gradgradcheck(
            lambda x: loss(x, target, weight, reduction_override='none'), (x, ),
            raise_exception=False)
    assert second_derivative_ok == loss.twice_differentiable


@pytest.mark.parametrize('name', CLS_LOSSES)
def test_bad_inputs_raise_value_error_naming_the_argument(name):
    logits, labels, w = make_cls_batch(n=20)
    loss = build(name)
    cases = [
        (dict(pred=logits[:, 0]), 'pred'),
        (dict(pred=logits.long()), 'pred'),
        # FocalLoss and CBFocalLoss take dense (B, C, *) pred with (B, *) labels; GHMC (N, C) only
        (dict(pred=logits[:, :, None]), 'pred' if name == 'GHMC' else 'target'),
        (dict(target=labels[:10]), 'target'),
        (dict(target=labels.float()), 'target'),
        (dict(target=labels.clone().index_fill_(0, torch.tensor([3]), 8)), 'target'),
        (dict(target=labels.clone().index_fill_(0, torch.tensor([3]), -1)), 'target'),
        (dict(weight=w[:5]), 'weight'),
        (dict(weight=-w), 'weight'),
        (dict(weight=w.clone().index_fill_(0, torch.tensor([0]), float('nan'))), 'weight'),
        (dict(avg_factor=3.0, reduction_override='sum'), 'avg_factor'),
        (dict(reduction_override='max'), 'reduction_override'),
    ]
    for change, argument in cases:
        call = dict(pred=logits, target=labels, weight=w)
        call.update(change)
        args = (call.pop('pred'), call.pop('target'), call.pop('weight'))
        with pytest.raises(ValueError, match=argument):
            loss(*args, **call)
    with pytest.raises(ValueError, match='reduction'):
        build(name, reduction='avg')


@pytest.mark.parametrize('name', CLS_LOSSES)
def test_check_finite(name):
    logits, labels, w = make_cls_batch(n=20)
    logits[2, 1] = float('inf')
    assert not torch.isfinite(build(name)(logits, labels, w, reduction_override='none')).all()
    with pytest.raises(ValueError, match='pred'):
        build(name, check_finite=True)(logits, labels, w)


def test_ghmr_bad_inputs():
    loss = build('GHMR')
    pred, target, weight = torch.randn(6, 4), torch.randn(6, 4), torch.ones(6, 4)
    for args, argument in [((pred, target[:, :2], weight), 'target'),
                           ((pred, target, weight[:, :2]), 'weight'),
                           ((pred, target, -weight), 'weight'),
                           ((pred.long(), target, weight), 'pred')]:
        with pytest.raises(ValueError, match=argument):
            loss(*args)
    with pytest.raises(ValueError, match='avg_factor'):
        loss(pred, target, weight, avg_factor=2, reduction_override='sum')
    with pytest.raises(ValueError, match='mu'):
        build('GHMR', mu=0)


@pytest.mark.parametrize('name', CLS_LOSSES)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_match_fp32(name, dtype):
    logits, labels, w = make_cls_batch(n=400, scale=2.0)
    # no momentum: ref is called twice and must weight alike both times
    kwargs = dict(momentum=0.0) if name == 'GHMC' else {}
    ref, loss = build(name, **kwargs), build(name, **kwargs)
    x = logits.to(dtype).requires_grad_(True)
    value = loss(x, labels, w, avg_factor=40.0)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert x.grad.dtype == dtype and torch.isfinite(x.grad).all()
    # the same loss of the rounded logits in fp32 (computation is fp32), and close to the
    # loss of the unrounded logits (within the input's rounding)
    torch.testing.assert_close(value, ref(x.detach().float(), labels, w, avg_factor=40.0))
    torch.testing.assert_close(value, ref(logits, labels, w, avg_factor=40.0), rtol=2e-2,
                               atol=1e-3)


@pytest.mark.parametrize('name', CLS_LOSSES)
def test_under_cpu_bf16_autocast(name):
    torch.manual_seed(0)
    features = torch.randn(300, 16)
    layer = torch.nn.Linear(16, 7)
    _, labels, w = make_cls_batch(n=300)
    ref = build(name)(layer(features), labels, w, avg_factor=30.0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = layer(features)
        assert logits.dtype == torch.bfloat16
        value = build(name)(logits, labels, w, avg_factor=30.0)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(layer.weight.grad).all()
    torch.testing.assert_close(value.float(), ref, rtol=3e-2, atol=1e-3)


def test_ghmr_half_inputs():
    pred, target = torch.randn(300, 4) * 0.05, torch.randn(300, 4) * 0.05
    weight = torch.ones(300, 4)
    ref = build('GHMR')(pred, target, weight)
    for dtype in (torch.float16, torch.bfloat16):
        value = build('GHMR')(pred.to(dtype), target.to(dtype), weight.to(dtype))
        assert value.dtype == torch.float32 and torch.isfinite(value)
        torch.testing.assert_close(value, ref, rtol=3e-2, atol=1e-4)
