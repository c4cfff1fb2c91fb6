"""Meta-Weight-Net: the hypergradient equals the create_graph one-step-unrolled reference."""
import copy
import math

import pytest
import torch

import mmreweight  # noqa: F401
from mmreweight.testing.meta_reference import reference_mwnet_hypergrad, reference_weight_grad
from mmreweight.testing.tiny_retinanet import build_tiny_retinanet, synthetic_batch
from mmreweight.weighting.mwnet import MetaWeightNetWeighter, VNet


@pytest.fixture(scope='module')
def batches():
    return (synthetic_batch(dtype=torch.float64, seed=1, noisy_fraction=0.3),
            synthetic_batch(dtype=torch.float64, seed=2))


def meta_step(model, theta, normalise, lr, train, clean, optim=None):
    torch.manual_seed(0)
    weighter = MetaWeightNetWeighter(theta, normalise=normalise,
                                     optim_wrapper=optim or dict(type='SGD', lr=1.0))
    weighter.double().bind(model, lr=lr)
    vnet_before = copy.deepcopy(weighter.vnet)
    out = {}
    weighter.register_forward_hook(lambda mod, args, w: out.update(w=(args[0], w)))
    weighter.prepare_clean(*clean)
    model.bbox_head.weighter = weighter
    model.loss(*train)
    model.bbox_head.weighter = None
    names = list(weighter.view.names)
    weighter.unbind()
    return weighter, vnet_before, names, out['w']


@pytest.mark.parametrize('theta,normalise', [('cls_out', 'mean_one'), ('cls_out', 'none'),
                                             ('head', 'mean_one'), ('all', 'mean_one'),
                                             ('cls_out', 'foreground'), ('head', 'foreground')])
def test_hypergradient_matches_create_graph_reference(batches, theta, normalise):
    train, clean = batches
    model = build_tiny_retinanet(torch.float64)
    weighter, vnet0, names, _ = meta_step(model, theta, normalise, 0.1, train, clean)
    ref = reference_mwnet_hypergrad(model, vnet0, names, 0.1, train, clean, normalise)
    scale = max(float(g.abs().max()) for g in ref)
    assert scale > 1e-4  # not a vanishing case
    for ours, expected in zip(weighter.last_hypergrad, ref):
        assert torch.allclose(ours, expected, atol=1e-5 * max(1.0, scale), rtol=0)
        # a hypergradient off by the normalisation's term would not pass this
        assert torch.allclose(ours, expected, atol=1e-8 * max(1.0, scale), rtol=1e-6)


@pytest.mark.parametrize('normalise', ['mean_one', 'foreground'])
def test_kept_coefficients_are_the_clean_loss_gradient_wrt_the_weights(batches, normalise):
    """``last_coef`` (what tools/diagnose.py --meta-signal reads) is dL_clean(theta')/dw_a of
    the VNet-weighted anchors, at the weights of the look-ahead (the VNet before its step)."""
    train, clean = batches
    model = build_tiny_retinanet(torch.float64)
    weighter, vnet0, names, (ctx, _) = meta_step(model, 'cls_out', normalise, 0.1, train, clean)
    fg = ctx.valid & (ctx.labels < ctx.num_classes)
    weighted = fg if normalise == 'foreground' else ctx.valid
    with torch.no_grad():
        raw = vnet0(ctx.loss.detach()[weighted])
    full = (ctx.valid if normalise == 'foreground' else torch.zeros_like(ctx.valid)).double()
    full[weighted] = raw * weighted.sum() / raw.sum()
    expected = reference_weight_grad(model, names, 0.1, train, clean, full)[weighted]
    ours = weighter.last_coef
    assert ours.shape == expected.shape and float(expected.abs().max()) > 1e-8
    assert torch.allclose(ours, expected, rtol=1e-6, atol=1e-9 * float(expected.abs().max()))


def test_training_loss_uses_the_updated_vnet(batches):
    """The weights returned after the meta step are w(phi - lr * hypergrad), mean one, detached."""
    train, clean = batches
    model = build_tiny_retinanet(torch.float64)
    weighter, vnet0, _, (ctx, weights) = meta_step(model, 'cls_out', 'mean_one', 0.1, train,
                                                   clean)
    stepped = copy.deepcopy(vnet0)
    with torch.no_grad():
        for p, g in zip(stepped.parameters(), weighter.last_hypergrad):
            p -= g  # SGD lr 1, no momentum
    valid = ctx.valid
    raw = stepped(ctx.loss.detach()[valid])
    expected = torch.zeros_like(weights)
    expected[valid] = raw * valid.sum() / raw.sum()
    assert torch.allclose(weights, expected, atol=1e-10)
    assert not weights.requires_grad
    assert float(weights[valid].mean()) == pytest.approx(1.0)
    assert bool((weights[~valid] == 0).all())
    # the VNet really moved
    assert any(not torch.equal(a, b)
               for a, b in zip(vnet0.parameters(), weighter.vnet.parameters()))


def test_no_meta_step_without_clean_batch(batches):
    train, _ = batches
    model = build_tiny_retinanet(torch.float64)
    weighter = MetaWeightNetWeighter().double().bind(model, lr=0.1)
    before = copy.deepcopy(weighter.vnet.state_dict())
    model.bbox_head.weighter = weighter
    model.loss(*train)
    for k, v in weighter.vnet.state_dict().items():
        assert torch.equal(v, before[k])
    assert weighter.last_hypergrad is None


def test_default_optimizer_and_state_round_trip(batches):
    train, clean = batches
    model = build_tiny_retinanet(torch.float64)
    weighter, _, _, _ = meta_step(model, 'cls_out', 'mean_one', 0.1, train, clean,
                                  optim=dict(type='OptimWrapper', optimizer=dict(
                                      type='SGD', lr=1e-3, momentum=0.9, nesterov=True,
                                      weight_decay=5e-4)))
    opt = weighter.optim_wrapper.optimizer
    assert isinstance(opt, torch.optim.SGD) and opt.defaults['nesterov']
    state = copy.deepcopy(weighter.meta_state_dict())
    assert state['optim_wrapper']['state']  # momentum buffers exist after one step
    fresh = MetaWeightNetWeighter().double()
    fresh.load_meta_state_dict(state)
    for a, b in zip(fresh.vnet.parameters(), weighter.vnet.parameters()):
        assert torch.equal(a, b)
    buf = fresh.optim_wrapper.optimizer.state_dict()['state'][0]['momentum_buffer']
    assert torch.equal(buf, state['optim_wrapper']['state'][0]['momentum_buffer'])


def test_vnet_value_by_hand_and_errors():
    # sigmoid(b2 + sum_j v_j relu(a_j x + c_j)) with two hidden units, in plain floats
    a, c, v, b2 = [1.5, -2.0], [-0.5, 1.0], [0.8, -1.2], 0.3
    net = VNet(2).double()
    with torch.no_grad():
        net.fc1.weight.copy_(torch.tensor(a, dtype=torch.float64)[:, None])
        net.fc1.bias.copy_(torch.tensor(c, dtype=torch.float64))
        net.fc2.weight.copy_(torch.tensor([v], dtype=torch.float64))
        net.fc2.bias.fill_(b2)
    xs = [0.0, 0.2, 0.7, 2.5]
    by_hand = [1 / (1 + math.exp(-(b2 + sum(vj * max(aj * x + cj, 0.0)
                                            for aj, cj, vj in zip(a, c, v))))) for x in xs]
    assert net(torch.tensor(xs, dtype=torch.float64)).tolist() == pytest.approx(by_hand, rel=1e-12)
    with pytest.raises(ValueError, match='normalise'):
        MetaWeightNetWeighter(normalise='sum_one')


@pytest.mark.parametrize('theta', ['cls_out', 'all'])
def test_meta_step_leaves_running_stats_alone(batches, theta):
    """The look-ahead forwards (clean batch at theta and theta') do not move BN statistics."""
    train, clean = batches
    model = build_tiny_retinanet(torch.float64, head_norm='BN')
    plain = copy.deepcopy(model)
    plain.loss(*train)  # the one running-statistics update a training step makes
    meta_step(model, theta, 'mean_one', 0.1, train, clean)
    for (name, a), b in zip(model.named_buffers(), plain.buffers()):
        assert torch.equal(a, b), name


def test_bf16_autocast_training_step(batches):
    """Under CPU autocast (--amp) the meta step runs in float32 and gives finite weights."""
    train, clean = batches
    model = build_tiny_retinanet(torch.float32)
    inputs, samples = train
    clean_inputs, clean_samples = clean
    weighter = MetaWeightNetWeighter().bind(model, lr=0.1)
    weighter.prepare_clean(clean_inputs.float(), clean_samples)
    model.bbox_head.weighter = weighter
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(inputs.float(), samples)
    assert torch.isfinite(losses['loss_cls']) and weighter.last_hypergrad is not None
    assert all(bool(torch.isfinite(g).all()) for g in weighter.last_hypergrad)


def test_sorted_vnet_equals_dense_vnet():
    """The O(N log h) evaluation gives the dense MLP's values and parameter gradients, including
    units with zero input slope (active everywhere or nowhere)."""
    torch.manual_seed(1)
    vnet = VNet(100).double()
    with torch.no_grad():
        vnet.fc1.weight[:6] = 0
        vnet.fc1.bias[:3] = 0.5   # active everywhere
        vnet.fc1.bias[3:6] = -0.5  # never active
    x = torch.rand(3000, dtype=torch.float64) * 4
    cot = torch.randn(3000, dtype=torch.float64)
    dense, fast = vnet(x), vnet.forward_sorted(x)
    assert torch.allclose(dense, fast, atol=1e-14)
    g_dense = torch.autograd.grad((dense * cot).sum(), list(vnet.parameters()))
    g_fast = torch.autograd.grad((fast * cot).sum(), list(vnet.parameters()))
    for a, b in zip(g_dense, g_fast):
        assert torch.allclose(a, b, atol=1e-12)
    assert float(g_dense[0][:3].abs().sum()) > 0  # the zero-slope units' gradient is checked


def test_foreground_normalisation_weights_only_the_foreground(batches):
    train, clean = batches
    model = build_tiny_retinanet(torch.float64)
    _, _, _, (ctx, weights) = meta_step(model, 'cls_out', 'foreground', 0.1, train, clean)
    fg = ctx.valid & (ctx.labels < ctx.num_classes)
    assert bool((weights[ctx.valid & ~fg] == 1).all()) and bool((weights[~ctx.valid] == 0).all())
    assert float(weights[fg].mean()) == pytest.approx(1.0)
    assert weights[fg].unique().numel() > 1
