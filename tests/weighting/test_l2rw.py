"""L2RW weights equal the create_graph look-ahead reference, for every choice of theta."""
import copy

import pytest
import torch

import mmreweight  # noqa: F401
from mmreweight.testing.meta_reference import reference_l2rw_weights
from mmreweight.testing.tiny_retinanet import build_tiny_retinanet, synthetic_batch
from mmreweight.weighting.l2rw import L2RWWeighter


@pytest.fixture(scope='module')
def batches():
    train = synthetic_batch(dtype=torch.float64, seed=1, noisy_fraction=0.3)
    clean = synthetic_batch(dtype=torch.float64, seed=2)
    return train, clean


def run_l2rw(model, theta, lr, train, clean, normalise='mean_one', per='anchor'):
    weighter = L2RWWeighter(theta, normalise, per).bind(model, lr=lr)
    out = {}
    weighter.register_forward_hook(lambda mod, args, w: out.update(w=w, ctx=args[0]))
    weighter.prepare_clean(*clean)
    model.bbox_head.weighter = weighter
    losses = model.loss(*train)
    model.bbox_head.weighter = None
    weighter.unbind()
    run_l2rw.last_ctx = out['ctx']
    return out['w'], weighter, losses


@pytest.mark.parametrize('theta,head_norm', [('cls_out', None), ('head', 'BN'), ('all', None)])
def test_weights_match_create_graph_reference(batches, theta, head_norm):
    train, clean = batches
    model = build_tiny_retinanet(torch.float64, head_norm=head_norm)
    weights, weighter, _ = run_l2rw(model, theta, 0.1, train, clean)
    ref = reference_l2rw_weights(model, _names(model, theta), 0.1, train, clean)
    assert weights.shape == ref.shape
    assert torch.allclose(weights, ref, atol=1e-5, rtol=0)
    # not a degenerate case: some anchors are dropped, weights vary, mean one over valid anchors
    assert 0 < float((ref == 0).float().mean()) < 0.5
    assert float(ref.std()) > 0.1


@pytest.mark.parametrize('normalise', ['pos_neg', 'foreground'])
def test_group_normalisations(batches, normalise):
    train, clean = batches
    model = build_tiny_retinanet(torch.float64)
    weights, _, _ = run_l2rw(model, 'cls_out', 0.1, train, clean, normalise=normalise)
    ref = reference_l2rw_weights(model, _names(model, 'cls_out'), 0.1, train, clean, normalise)
    assert torch.allclose(weights, ref, atol=1e-5, rtol=0)
    glob = reference_l2rw_weights(model, _names(model, 'cls_out'), 0.1, train, clean)
    assert not torch.allclose(ref, glob, atol=1e-2)
    # by hand: the foreground has mean one, some of it dropped; 'foreground' keeps background at 1
    ctx = run_l2rw.last_ctx
    valid, fg = ctx.valid, ctx.labels < ctx.num_classes
    assert float(weights[valid & fg].mean()) == pytest.approx(1.0)
    assert 0 < float((weights[valid & fg] == 0).float().mean()) < 1
    if normalise == 'foreground':
        assert bool((weights[valid & ~fg] == 1).all()) and bool((weights[~valid] == 0).all())


@pytest.mark.parametrize('theta', ['cls_out', 'head'])
def test_per_annotation_weights_match_create_graph_reference(batches, theta):
    """One epsilon per annotation: every anchor of an annotation gets the annotation's weight,
    max(0, sum of its anchors' alignments), equal to the create_graph reference."""
    train, clean = batches
    model = build_tiny_retinanet(torch.float64)
    weights, _, _ = run_l2rw(model, theta, 0.1, train, clean, 'foreground', 'annotation')
    ref = reference_l2rw_weights(model, _names(model, theta), 0.1, train, clean, 'foreground',
                                 'annotation')
    assert torch.allclose(weights, ref, atol=1e-5, rtol=0)
    per_anchor = reference_l2rw_weights(model, _names(model, theta), 0.1, train, clean,
                                        'foreground')
    assert not torch.allclose(ref, per_anchor, atol=1e-2)
    # by hand: constant over each annotation's anchors, not over all of them; mean one
    ctx = run_l2rw.last_ctx
    index, fg = ctx.extras['targets'].gt_index, ctx.valid & (ctx.labels < ctx.num_classes)
    for g in index[fg].unique():
        assert weights[fg & (index == g)].unique().numel() == 1
    assert weights[fg].unique().numel() > 1
    assert float(weights[fg].mean()) == pytest.approx(1.0)


def test_per_annotation_needs_foreground_normalisation():
    with pytest.raises(ValueError, match="normalise='foreground'"):
        L2RWWeighter('cls_out', 'mean_one', 'annotation')
    with pytest.raises(ValueError, match='per must be one of'):
        L2RWWeighter('cls_out', 'foreground', 'image')


def _names(model, theta):
    weighter = L2RWWeighter(theta).bind(model)
    names = list(weighter.view.names)
    weighter.unbind()
    return names


def test_theta_selection():
    model = build_tiny_retinanet(torch.float64)
    assert _names(model, 'cls_out') == ['bbox_head.retina_cls.weight', 'bbox_head.retina_cls.bias']
    head = _names(model, 'head')
    assert all(n.startswith(('bbox_head.cls_convs', 'bbox_head.retina_cls')) for n in head)
    assert len(head) == 6
    everything = _names(model, 'all')
    assert any(n.startswith('backbone.') for n in everything)
    assert any(n.startswith('neck.') for n in everything)
    assert not any('reg' in n for n in everything)


def test_per_parameter_learning_rates(batches):
    """With different lrs for W and b the inner product is <grad l_a, alpha * g_c>."""
    train, clean = batches
    model = build_tiny_retinanet(torch.float64)
    lrs = lambda params: [0.1 if p.dim() > 1 else 3.0 for p in params]  # noqa: E731
    weights, weighter, _ = run_l2rw(model, 'cls_out', lrs, train, clean)
    ref = reference_l2rw_weights(model, _names(model, 'cls_out'), [0.1, 3.0], train, clean)
    assert torch.allclose(weights, ref, atol=1e-5, rtol=0)
    uniform = reference_l2rw_weights(model, _names(model, 'cls_out'), 0.1, train, clean)
    assert not torch.allclose(weights, uniform, atol=1e-3)  # the lrs matter: the test can fail


@pytest.mark.parametrize('theta', ['cls_out', 'all'])
def test_meta_step_leaves_running_stats_alone(batches, theta):
    train, clean = batches
    model = build_tiny_retinanet(torch.float64, head_norm='BN')
    plain = copy.deepcopy(model)
    plain.loss(*train)  # the one running-statistics update a training step makes
    run_l2rw(model, theta, 0.1, train, clean)
    for (name, a), b in zip(model.named_buffers(), plain.buffers()):
        assert torch.equal(a, b), name
    assert any(n.endswith('running_mean') for n, _ in model.named_buffers())


def test_errors():
    model = build_tiny_retinanet(torch.float64)
    with pytest.raises(ValueError, match='theta'):
        L2RWWeighter('backbone')
    weighter = L2RWWeighter().bind(model)
    model.bbox_head.weighter = weighter
    with pytest.raises(RuntimeError, match='prepare_clean'):
        model.loss(*synthetic_batch(dtype=torch.float64))
    stock = build_tiny_retinanet(torch.float64, head_type='RetinaHead')
    with pytest.raises(TypeError, match='RetinaHead cannot take per-anchor weights'):
        L2RWWeighter().bind(stock)


@pytest.mark.parametrize('theta', ['cls_out', 'head'])
def test_clean_grad_momentum_equals_weighted_clean_losses(batches, theta):
    """With momentum m and three clean batches at one theta, the moving average is
    m^2 g1 + m (1 - m) g2 + (1 - m) g3: the weights of the create_graph reference whose clean
    loss is that combination of the three clean losses."""
    train, _ = batches
    cleans = [synthetic_batch(dtype=torch.float64, seed=s) for s in (2, 3, 4)]
    model = build_tiny_retinanet(torch.float64)
    m = 0.75
    weighter = L2RWWeighter(theta, 'foreground', clean_grad_momentum=m).bind(model, lr=0.1)
    for clean in cleans:
        weighter.prepare_clean(*clean)
    out = {}
    weighter.register_forward_hook(lambda mod, args, w: out.update(w=w))
    model.bbox_head.weighter = weighter
    model.loss(*train)
    model.bbox_head.weighter = None
    names = _names(model, theta)
    ref = reference_l2rw_weights(model, names, 0.1, train, cleans, 'foreground',
                                 clean_coefs=[m * m, m * (1 - m), 1 - m])
    assert torch.allclose(out['w'], ref, atol=1e-5, rtol=0)
    # the test can fail: the last clean batch alone gives other weights
    last = reference_l2rw_weights(model, names, 0.1, train, cleans[-1], 'foreground')
    assert not torch.allclose(ref, last, atol=1e-2)


def test_clean_grad_momentum_state_round_trip(batches):
    """The moving average survives meta_state_dict / load_meta_state_dict: a restored weighter
    continues exactly as the original; momentum 0 keeps no state."""
    _, clean = batches
    other = synthetic_batch(dtype=torch.float64, seed=3)
    model = build_tiny_retinanet(torch.float64)
    a = L2RWWeighter('cls_out', 'foreground', clean_grad_momentum=0.5).bind(model, lr=0.1)
    a.prepare_clean(*clean)
    state = a.meta_state_dict()
    assert [t.shape for t in state['clean_grad_avg']] == [p.shape for p in a.view.params]
    b = L2RWWeighter('cls_out', 'foreground', clean_grad_momentum=0.5).bind(model, lr=0.1)
    b.load_meta_state_dict(state)
    fresh = L2RWWeighter('cls_out', 'foreground', clean_grad_momentum=0.5).bind(model, lr=0.1)
    for w in (a, b, fresh):
        w.prepare_clean(*other)
    for x, y, z in zip(a._direction, b._direction, fresh._direction):
        assert torch.equal(x, y)
        assert not torch.allclose(x, z)  # without the restored average: only `other`
    plain = L2RWWeighter('cls_out', 'foreground').bind(model, lr=0.1)
    plain.prepare_clean(*clean)
    assert plain.meta_state_dict() == dict(clean_grad_avg=None)
    plain.load_meta_state_dict(dict(weighter={}))  # a checkpoint from before the average: fine


def test_clean_grad_momentum_errors(batches):
    with pytest.raises(ValueError, match='clean_grad_momentum'):
        L2RWWeighter(clean_grad_momentum=1.0)
    with pytest.raises(ValueError, match='clean_grad_momentum'):
        L2RWWeighter(clean_grad_momentum=-0.1)
    _, clean = batches
    model = build_tiny_retinanet(torch.float64)
    w = L2RWWeighter('cls_out', clean_grad_momentum=0.9).bind(model)
    w.load_meta_state_dict(dict(clean_grad_avg=[torch.zeros(3)]))
    with pytest.raises(RuntimeError, match='clean-gradient average has shapes'):
        w.prepare_clean(*clean)
