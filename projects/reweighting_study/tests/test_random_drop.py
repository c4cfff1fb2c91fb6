"""RandomPositiveDropWeighter (the L2RW control) against masks and weights worked out by hand."""
import importlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from mmreweight.registry import MODELS
from mmreweight.weighting.base import AnchorLossContext
from reweighting_study import plan

REPO = Path(__file__).resolve().parents[3]
# the name the config imports it by: a second import under another name would register it twice
random_drop = importlib.import_module('projects.reweighting_study.reweighting_study.random_drop')
RandomPositiveDropWeighter = random_drop.RandomPositiveDropWeighter
C = 3  # foreground classes; label C = background


def make_ctx(labels, label_weights=None, progress=0.25, gt_index=None, **extras):
    labels = torch.as_tensor(labels)
    lw = torch.ones(len(labels)) if label_weights is None else torch.as_tensor(label_weights)
    if gt_index is not None:
        extras['targets'] = SimpleNamespace(gt_index=torch.as_tensor(gt_index))
    return AnchorLossContext(loss=torch.rand(len(labels)), logits=torch.zeros(len(labels), C),
                             labels=labels, label_weights=lw, num_classes=C,
                             avg_factor=float((labels < C).sum()), progress=progress,
                             extras=extras)


def expected_drop_mask(weighter, ctx):
    """The mask by the documented recipe: uniforms from a generator seeded with the batch seed."""
    generator = torch.Generator().manual_seed(weighter.batch_seed(ctx.progress))
    return torch.rand(ctx.labels.shape, generator=generator) < weighter.drop_rate


def expected_grouped_weights(weighter, ctx, groups, count):
    """Weights by the documented recipe when anchors are dropped in groups (``None``: a
    background anchor): one uniform per group from the batch's generator, the kept foreground
    anchors scaled to mean one over the foreground (every anchor valid)."""
    generator = torch.Generator().manual_seed(weighter.batch_seed(ctx.progress))
    dropped = (torch.rand(count, generator=generator) < weighter.drop_rate).tolist()
    foreground = [i for i, g in enumerate(groups) if g is not None]
    used = {groups[i] for i in foreground}
    assert 0 < sum(dropped[g] for g in used) < len(used), \
        'pick a seed that drops some groups of the batch and keeps some'
    kept = [i for i in foreground if not dropped[groups[i]]]
    expected = [1. if g is None else 0. for g in groups]
    for i in kept:
        expected[i] = len(foreground) / len(kept)
    return expected


def test_weights_by_hand():
    # anchors: bg, fg, fg, ignored fg, fg, bg, fg, fg (ignored anchors weigh 0 whatever is drawn)
    labels, lw = [C, 0, 1, 2, 0, C, 1, 2], [1., 1., 1., 0., 1., 1., 1., 1.]
    weighter = RandomPositiveDropWeighter(drop_rate=0.5, seed=3)
    ctx = make_ctx(labels, lw)
    drop = expected_drop_mask(weighter, ctx).tolist()
    kept = [i for i in (1, 2, 4, 6, 7) if not drop[i]]
    assert 0 < len(kept) < 5, 'pick a seed whose mask keeps some positives and drops some'
    expected = [0.] * 8
    expected[0] = expected[5] = 1.  # background
    for i in kept:
        expected[i] = 5 / len(kept)  # mean one over the 5 valid foreground anchors
    assert weighter(ctx).tolist() == pytest.approx(expected)
    assert weighter.log_scalars() == dict(random_drop_frac=pytest.approx(1 - len(kept) / 5))


def test_drops_about_its_rate_and_keeps_the_mean():
    labels = torch.randint(0, C, (20000, ))
    weighter = RandomPositiveDropWeighter(drop_rate=0.52, seed=0)
    w = weighter(make_ctx(labels))
    assert (w == 0).float().mean().item() == pytest.approx(0.52, abs=0.015)  # 2σ ≈ 0.007
    assert w.mean().item() == pytest.approx(1.0)


def test_same_batch_same_mask_so_a_resumed_run_draws_the_same():
    labels = torch.randint(0, C, (500, ))
    first = RandomPositiveDropWeighter(drop_rate=0.5, seed=7)(make_ctx(labels, progress=0.4))
    again = RandomPositiveDropWeighter(drop_rate=0.5, seed=7)(make_ctx(labels, progress=0.4))
    assert torch.equal(first, again)
    for seed, progress in ((7, 0.41), (8, 0.4)):  # the next batch; another run's seed
        weighter = RandomPositiveDropWeighter(drop_rate=0.5, seed=seed)
        assert not torch.equal(first == 0, weighter(make_ctx(labels, progress=progress)) == 0)


def test_leaves_the_global_random_stream_alone():
    ctx = make_ctx(torch.arange(50) % (C + 1))
    torch.manual_seed(11)
    expected = torch.rand(4)
    torch.manual_seed(11)
    RandomPositiveDropWeighter(drop_rate=0.5, seed=1)(ctx)
    assert torch.equal(torch.rand(4), expected)


def test_seed_defaults_to_the_runs_seed():
    torch.manual_seed(1234)
    assert RandomPositiveDropWeighter(drop_rate=0.5).seed == 1234


def test_no_positives_leaves_the_background():
    weighter = RandomPositiveDropWeighter(drop_rate=0.5, seed=0)
    assert weighter(make_ctx([C, C, C], [1., 0., 1.])).tolist() == [1., 0., 1.]


def test_per_annotation_drops_every_anchor_of_the_drawn_annotations():
    # anchors: bg, ann 0, ann 0, ann 1, bg, ann 2, ann 1, ann 2 (annotation index -1 = none)
    labels, index = [C, 0, 0, 1, C, 2, 1, 2], [-1, 0, 0, 1, -1, 2, 1, 2]
    weighter = RandomPositiveDropWeighter(drop_rate=0.5, per='annotation', seed=5)
    ctx = make_ctx(labels, gt_index=index)
    groups = [a if a >= 0 else None for a in index]  # one draw per annotation
    assert weighter(ctx).tolist() == pytest.approx(expected_grouped_weights(weighter, ctx,
                                                                            groups, 3))


def test_per_annotation_needs_the_annotation_index():
    weighter = RandomPositiveDropWeighter(drop_rate=0.5, per='annotation', seed=0)
    with pytest.raises(ValueError, match='gt_index.*ReweightRetinaHead'):
        weighter(make_ctx([C, 0]))
    with pytest.raises(ValueError, match="per must be one of 'anchor', 'annotation', 'cell'"):
        RandomPositiveDropWeighter(drop_rate=0.5, per='image')


def test_per_cell_drops_every_anchor_of_the_drawn_class_and_shape_cells():
    # 2 images, 2 anchor shapes, levels of 1x2 and 1x1 locations: 6 anchors an image, whose
    # shapes (priors) run 0, 1, 0, 1, 0, 1 (a location's shapes adjacent, levels in order)
    feats = [torch.zeros(2, 4, 1, 2), torch.zeros(2, 4, 1, 1)]
    priors = [0, 1, 0, 1, 0, 1] * 2
    labels = [C, 0, 0, 1, 2, 0,  # image 0
              1, C, 0, 2, C, 1]  # image 1
    weighter = RandomPositiveDropWeighter(drop_rate=0.5, per='cell', seed=2)
    ctx = make_ctx(labels, head=SimpleNamespace(num_base_priors=2), cls_feats=feats)
    cells = [c * 2 + p if c < C else None for c, p in zip(labels, priors)]  # class * 2 + shape
    assert weighter(ctx).tolist() == pytest.approx(expected_grouped_weights(weighter, ctx,
                                                                            cells, C * 2))


def test_per_cell_needs_the_head_and_features_that_match_the_anchors():
    weighter = RandomPositiveDropWeighter(drop_rate=0.5, per='cell', seed=0)
    with pytest.raises(ValueError, match="per='cell' needs the head.*ReweightRetinaHead"):
        weighter(make_ctx([C, 0]))
    with pytest.raises(ValueError, match='the features give 4 anchors, the labels 2'):
        weighter(make_ctx([C, 0], head=SimpleNamespace(num_base_priors=2),
                          cls_feats=[torch.zeros(1, 4, 1, 2)]))


@pytest.mark.parametrize('rate', [-0.1, 1.0, float('nan')])
def test_bad_rate_is_a_clear_error(rate):
    with pytest.raises(ValueError, match=r'drop_rate must be in \[0, 1\)'):
        RandomPositiveDropWeighter(drop_rate=rate)


def test_config_is_focal_plus_the_control_and_builds_it():
    assert 'random_drop' in plan.VARIANTS and 'random_drop' not in plan.ORACLES
    focal, control = (Config.fromfile(str(REPO / plan.METHOD_CONFIGS[m])).to_dict()
                      for m in ('focal', 'random_drop'))
    (hook, ) = control.pop('custom_hooks')
    weighter = MODELS.build(hook['weighter'])
    assert isinstance(weighter, RandomPositiveDropWeighter) and weighter.drop_rate == 0.52
    assert control['model']['bbox_head'].pop('type') == 'mmreweight.ReweightRetinaHead'
    assert focal['model']['bbox_head'].pop('type') == 'RetinaHead'
    assert control.pop('custom_imports')['imports'] == ['mmreweight', random_drop.__name__]
    focal.pop('custom_imports')
    focal.pop('custom_hooks', None)
    assert control == focal


@pytest.mark.parametrize('method,per,rate', [('random_drop_annotation', 'annotation', 0.2),
                                              ('random_drop_cell', 'cell', 0.52)])
def test_grouped_configs_differ_from_the_anchor_one_only_in_the_weighter(method, per, rate):
    anchor, grouped = (Config.fromfile(str(REPO / plan.METHOD_CONFIGS[m])).to_dict()
                       for m in ('random_drop', method))
    assert method in plan.VARIANTS
    (hook, ) = grouped.pop('custom_hooks')
    weighter = MODELS.build(hook['weighter'])
    assert weighter.per == per and weighter.drop_rate == rate
    anchor.pop('custom_hooks')
    assert grouped == anchor
