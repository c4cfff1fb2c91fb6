"""Per-anchor diagnostics: histograms, GHM weights, anchor targets and noise flags, and the
whole dump on freshly initialised detectors (nothing is trained)."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from torchvision.ops import box_iou

from mmreweight.datasets import set_benchmark
from mmreweight.losses import GHMC, count_fpn_levels, frozen_loss_statistics
from mmreweight.models.reweight_retina_head import CLEAN_POSITIVE, NOISY_POSITIVE, NOT_POSITIVE
from mmreweight.registry import MODELS
from mmreweight.analysis import diagnostics as diag
from mmreweight.analysis.meta_signal import meta_signal

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
TINY = dict(train_images=16, val_images=8, test_images=8, meta_images=8)


def test_density_histogram_counts_valid_elements_in_30_bins():
    g = torch.rand(500, 10)
    valid = torch.rand(500, 1) > 0.3
    counts = diag.density_histogram(g, valid.expand_as(g))
    expected, _ = np.histogram(g[valid.expand_as(g)].numpy(), bins=np.arange(31) / 30)
    assert counts.tolist() == expected.tolist()


def test_ghm_anchor_weights_reproduce_the_ghm_loss():
    torch.manual_seed(0)
    loss = GHMC(bins=30, momentum=0.75, num_levels=3)
    loss.acc_sum.copy_(torch.rand(3, 30) * 100 + 1)
    n, c = 600, 10
    logits, labels = torch.randn(n, c) * 3, torch.randint(0, c + 1, (n, ))
    label_weights = (torch.rand(n) > 0.1).float()
    levels = torch.arange(n) * 3 // n  # 3 levels, in order, as the head calls the loss
    per_anchor_bce, weights = diag.ghm_anchor_weights(loss, logits, labels, label_weights,
                                                      levels, per_level_stats=True)
    acc_before = loss.acc_sum.clone()
    with count_fpn_levels(loss), frozen_loss_statistics(loss):
        expected = sum(loss(logits[levels == lv], labels[levels == lv],
                            label_weights[levels == lv], reduction_override='sum')
                       for lv in range(3))
    torch.testing.assert_close((weights * per_anchor_bce).sum(), expected, rtol=1e-5, atol=1e-4)
    assert torch.equal(loss.acc_sum, acc_before)  # read, not written


def _head(kind: str):
    cfg = Config.fromfile(str(CONFIGS / 'retinanet_focal.py'))
    head_cfg = dict(cfg.model.bbox_head, type=kind, train_cfg=cfg.model.train_cfg)
    with DefaultScope.overwrite_default_scope('mmreweight'):
        return MODELS.build(head_cfg)


def test_anchor_targets_and_noise_flags_match_the_reweighting_head():
    torch.manual_seed(0)
    plain, reweight = _head('RetinaHead'), _head('mmreweight.ReweightRetinaHead')
    sizes = [16, 8, 4]
    scores = [torch.randn(2, 9 * 10, s, s) for s in sizes]
    metas = [dict(img_shape=(128, 128), pad_shape=(128, 128), batch_input_shape=(128, 128),
                  scale_factor=(1.0, 1.0))] * 2
    gts = []
    for boxes, labels, noisy in (([[10, 10, 40, 44], [60, 70, 100, 110]], [3, 7], [True, False]),
                                 ([[20, 30, 60, 60]], [1], [False])):
        inst = InstanceData()
        inst.bboxes = torch.tensor(boxes, dtype=torch.float32)
        inst.labels = torch.tensor(labels)
        inst.noisy = torch.tensor(noisy)
        gts.append(inst)
    mine = diag.anchor_targets(plain, scores, gts, metas)
    theirs = reweight.flat_targets([s.shape[-2:] for s in scores], gts, metas)
    assert torch.equal(mine['labels'], theirs.labels)
    assert torch.equal(mine['label_weights'], theirs.label_weights)
    assert torch.equal(mine['gt_noisy'], theirs.gt_noisy)
    assert (mine['gt_noisy'] == NOISY_POSITIVE).any() and (mine['gt_noisy'] == 0).any()
    assert ((mine['gt_noisy'] != NOT_POSITIVE) == (mine['labels'] < 10)).all()
    # the matched annotation and the IoU, against torchvision's IoU of the anchors with it
    anchors, _ = plain.get_anchors([s.shape[-2:] for s in scores], metas, device='cpu')
    anchors = torch.cat([torch.cat(per_image) for per_image in anchors])
    boxes = torch.cat([g.bboxes for g in gts])
    pos = mine['gt_noisy'] != NOT_POSITIVE
    assert ((mine['gt_index'] >= 0) == pos).all() and (mine['gt_iou'][~pos] == 0).all()
    index = mine['gt_index'][pos]
    expected = box_iou(anchors[pos], boxes).gather(1, index[:, None]).squeeze(1)
    torch.testing.assert_close(mine['gt_iou'][pos], expected)
    first_image = torch.arange(len(pos)) < len(pos) // 2
    assert (index[first_image[pos]] < 2).all() and (index[~first_image[pos]] == 2).all()
    assert torch.equal(torch.cat([g.labels for g in gts])[index], mine['labels'][pos])
    assert set(index.tolist()) == {0, 1, 2} and mine['num_gts'].item() == 3
    levels = diag.anchor_levels([s.shape for s in scores], 9)
    assert levels.shape == mine['labels'].shape
    assert levels[:16 * 16 * 9].eq(0).all() and levels[16 * 16 * 9].item() == 1
    # each anchor's prior index names its shape: its size equals that base anchor's at its level
    priors = diag.anchor_priors([s.shape for s in scores], 9)
    assert priors.shape == levels.shape and set(priors.tolist()) == set(range(9))
    base = plain.prior_generator.base_anchors  # per level, (9, 4)
    expected_wh = torch.stack([base[lv][p, 2:] - base[lv][p, :2]
                               for lv, p in zip(levels.tolist(), priors.tolist())])
    torch.testing.assert_close(anchors[:, 2:] - anchors[:, :2], expected_wh)


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('MMREWEIGHT_DATA_ROOT', str(root))
        yield root


def _tiny_cfg(method):
    """``configs/retinanet_<method>.py`` on a tiny 40% uniform-noise benchmark, no workers."""
    cfg = Config.fromfile(str(CONFIGS / f'retinanet_{method}.py'))
    set_benchmark(cfg._cfg_dict, dict(TINY, noise_type='uniform', noise_rate=0.4))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(num_workers=0, persistent_workers=False)
    cfg.train_dataloader.batch_size = 4
    for hook in cfg.get('custom_hooks', []):
        if 'clean_dataloader' in hook:
            hook.clean_dataloader.batch_size = 4
    return cfg


# L2RW (weights from the clean batch) and MW-Net (a trained state) stand for the weighters
@pytest.mark.parametrize('method', ['focal', 'ghm', 'cb_focal', 'l2rw', 'mwnet'])
def test_dump_of_an_initialised_detector(method, tiny_data):
    d = diag.AnchorDiagnostics(_tiny_cfg(method), 'init', seed=0)
    weighter = d.hook.weighter if d.hook is not None else None
    state = copy.deepcopy(weighter.state_dict()) if weighter is not None else None
    dump = d.run(batches=1, max_negatives=None)
    n = len(dump['loss'])
    assert all(len(dump[k]) == n
               for k in ('weight', 'label', 'pos', 'noisy', 'level', 'prior', 'batch'))
    assert (dump['batch'] == 0).all()
    assert dump['neg_keep_frac'] == 1.0
    assert np.isfinite(dump['loss']).all() and (dump['weight'] >= 0).all()
    pos = dump['pos']
    assert pos.any() and ((dump['noisy'] != NOT_POSITIVE) == pos).all()
    assert ((dump['gt_index'] >= 0) == pos).all() and (dump['gt_iou'][~pos] == 0).all()
    assert (dump['gt_iou'][pos] > 0).all() and (dump['gt_iou'] <= 1).all()
    # every valid anchor's 10 elements are in the histogram
    assert dump['hist_all'].sum() == n * 10
    assert dump['hist_target1'].sum() == pos.sum()
    assert dump['hist_target1_clean'].sum() + dump['hist_target1_noisy'].sum() == pos.sum()
    if method == 'focal':
        assert d.method == 'none' and (dump['weight'] == 1).all()
    elif method == 'cb_focal':
        weights = np.append(dump['cb_class_weights'], 1.0)  # background weight 1
        np.testing.assert_allclose(dump['weight'], weights[dump['label']], rtol=1e-6)
    elif method == 'ghm':
        assert d.method == 'GHMC' and dump['ghm_acc_sum'].shape[1] == 30
        assert (dump['weight'] > 0).all()
    elif method == 'l2rw':  # mean one over valid anchors (all kept here)
        assert d.method == 'L2RWWeighter'
        assert dump['weight'].mean() == pytest.approx(1.0, rel=1e-4)
    else:  # MW-Net: no meta step (its VNet unchanged), weights VNet(loss), mean one over the
        # foreground (the study config's normalise='foreground'), background 1
        assert d.method == 'MetaWeightNetWeighter' and weighter.normalise == 'foreground'
        assert all(torch.equal(v, weighter.state_dict()[k]) for k, v in state.items())
        raw = weighter.vnet(torch.from_numpy(dump['loss'][pos])).detach().numpy()
        np.testing.assert_allclose(dump['weight'][pos], raw / raw.mean(), rtol=1e-5)
        assert (dump['weight'][~pos] == 1).all()
    summary = diag.summarize(dump)
    assert summary['positives'] == pos.sum() and summary['anchors'] == n


def test_summary_auc_of_weights_and_of_the_small_loss_criterion():
    # 4 clean positives with losses 0.1..0.4, 4 noisy ones with 0.5..0.8, 2 negatives
    loss = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.05, 0.05], np.float32)
    noisy = np.array([0, 0, 0, 0, 1, 1, 1, 1, -1, -1], np.int8)
    pos = noisy >= 0
    # weights: one clean and one noisy positive clipped to 0, the rest rank noisy above clean
    weight = np.array([0.0, 1.0, 1.1, 1.2, 0.0, 1.5, 1.6, 1.7, 1.0, 1.0], np.float32)
    s = diag.summarize(dict(weight=weight, pos=pos, noisy=noisy, loss=loss))
    assert s['auc_small_loss_clean_vs_noisy'] == pytest.approx(1.0)
    # pairs (clean, noisy) with the clean weight higher: 0.0 vs 0.0 ties (1/2), 1.0/1.1/1.2 > 0.0
    assert s['auc_weight_clean_vs_noisy'] == pytest.approx((0.5 + 3) / 16)
    assert s['zero_weight_frac_pos'] == pytest.approx(2 / 8)
    assert s['zero_weight_frac'] == pytest.approx(2 / 10)
    assert s['mean_weight_pos_noisy'] == pytest.approx(4.8 / 4)


def test_box_zeroing_tells_annotation_selection_from_anchor_selection():
    # annotation 0: 4 anchors, weight rising with IoU, one zeroed; annotation 1: all zeroed;
    # annotation 2: 3 anchors, weight falling with IoU, none zeroed; a negative (index -1)
    gt_index = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, -1])
    iou = np.array([.5, .6, .7, .8, .6, .7, .5, .6, .9, 0], np.float32)
    weight = np.array([0, .5, 1, 2, 0, 0, 3, 2, 1, 1], np.float32)
    dump = dict(gt_index=gt_index, gt_iou=iou, weight=weight)
    got = diag.box_zeroing(dump, gt_index >= 0)
    assert got['annotations'] == 3
    assert got['annotations_all_zeroed'] == pytest.approx(1 / 3)
    assert got['annotations_partly_zeroed'] == pytest.approx(1 / 3)
    # rank correlations +1 (annotation 0) and -1 (annotation 2); annotation 1 has 2 anchors
    assert got['weight_iou_rank_corr'] == pytest.approx(0.0)
    got = diag.box_zeroing(dump, np.isin(gt_index, [0]))
    assert got['weight_iou_rank_corr'] == pytest.approx(1.0)
    assert got['annotations_all_zeroed'] == 0 and got['annotations_partly_zeroed'] == 1


def test_shape_gating_pairs_anchors_of_one_batch_class_and_shape():
    # batch 0, class 3: clean annotation 0 (shape 0 zeroed twice, shape 1 kept), noisy
    # annotations 1 (shape 0 zeroed, shape 1 kept) and 2 (shape 1 zeroed); batch 1, class 3:
    # annotation 3 (shape 0 kept), which pairs with nothing; a negative
    batch = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    label = np.array([3, 3, 3, 3, 3, 3, 3, 10])
    prior = np.array([0, 0, 1, 0, 1, 1, 0, 4])
    gt_index = np.array([0, 0, 0, 1, 1, 2, 3, -1])
    noisy = np.array([0, 0, 0, 1, 1, 1, 0, -1], np.int8)
    weight = np.array([0, 0, 2, 0, 1, 0, 1, 1], np.float32)
    dump = dict(batch=batch, label=label, prior=prior, gt_index=gt_index, noisy=noisy,
                weight=weight, pos=gt_index >= 0)
    got = diag.shape_gating(dump)
    # same shape, other box: (0a,1a) (0b,1a) agree; (0c,1b) agree; (0c,2) (1b,2) do not
    assert got['zero_agreement_same_shape'] == pytest.approx(3 / 5)
    # other shape: 0a/0b with 2 agree, 1a with 2 agrees; 0a/0b with 1b, 0c with 1a do not
    assert got['zero_agreement_other_shape'] == pytest.approx(3 / 6)
    assert got['zero_agreement_pairs'] == 11
    # cells (0, 3, 0): clean 1.0, noisy 1.0; (0, 3, 1): clean 0.0, noisy 0.5
    assert got['mixed_cells'] == 2
    assert got['zero_frac_clean_in_mixed_cells'] == pytest.approx(0.5)
    assert got['zero_frac_noisy_in_mixed_cells'] == pytest.approx(0.75)
    summary = diag.summarize(dump | dict(loss=weight, gt_iou=np.ones(8, np.float32)))
    assert summary['zero_agreement_pairs'] == 11


def test_clean_batch_agreement_of_l2rw_weights(tiny_data):
    d = diag.AnchorDiagnostics(_tiny_cfg('l2rw'), 'init', seed=0)
    data = next(iter(d.train_loader()))
    out = d.clean_batch_agreement(data, 3)
    w = out['weights']
    assert w.shape == (3, out['positives']) and out['positives'] > 0
    # recompute the statistics from the returned weights
    nz = w > 1e-3
    agree = np.mean([(nz[i] == nz[j]).mean() for i, j in ((0, 1), (0, 2), (1, 2))])
    assert out['zero_agreement'] == pytest.approx(agree)
    assert out['zero_frac_pos'] == pytest.approx((~nz).mean())
    # the tiny clean split has 8 images drawn 4 at a time: batches differ, so do the weights
    assert not np.allclose(w[0], w[1])
    # mean Pearson correlation of the batches' weights, pair by pair, by hand
    def pearson(a, b):
        a, b = a - a.mean(), b - b.mean()
        return (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())

    wd = w.astype(np.float64)
    corr = np.mean([pearson(wd[i], wd[j]) for i, j in ((0, 1), (0, 2), (1, 2))])
    assert out['weight_correlation'] == pytest.approx(corr, rel=1e-5, abs=1e-6)
    # 40% noise: the batch has clean and noisy positives; the last clean batch's AUC by hand
    sel = np.isin(out['noisy'], (CLEAN_POSITIVE, NOISY_POSITIVE))
    is_clean = out['noisy'][sel] == CLEAN_POSITIVE
    assert 0 < is_clean.sum() < sel.sum()
    last = w[-1][sel]
    pairs = [(c > n) + 0.5 * (c == n) for c in last[is_clean] for n in last[~is_clean]]
    assert out['auc_last'] == pytest.approx(np.mean(pairs))
    with pytest.raises(ValueError, match='clean_batches must be >= 2'):
        d.clean_batch_agreement(data, 1)
    focal = diag.AnchorDiagnostics(_tiny_cfg('focal'), 'init', seed=0)
    with pytest.raises(ValueError, match='needs a weighter whose weights come from'):
        focal.clean_batch_agreement(data, 2)


def test_meta_signal_of_mwnet_leaves_the_vnet_as_it_was(tiny_data):
    d = diag.AnchorDiagnostics(_tiny_cfg('mwnet'), 'init', seed=0)
    w = d.hook.weighter
    state = copy.deepcopy(w.state_dict())
    out = meta_signal(d, 3)
    # every step from the same VNet, which is restored (and its optimizer: no Adam step kept)
    assert all(torch.equal(v, w.state_dict()[k]) for k, v in state.items())
    assert not w.optim_wrapper.optimizer.state
    g = np.array(out['hypergrads'])
    assert g.shape == (3, sum(p.numel() for p in w.vnet.parameters()))
    assert not np.allclose(g[0], g[1])  # batches differ, so do their hypergradients
    norms = np.linalg.norm(g, axis=1)
    assert out['agreement'] == pytest.approx(np.linalg.norm(g.mean(0)) / norms.mean())
    assert out['random_agreement'] == pytest.approx(3 ** -0.5)
    assert len(out['per_batch']) == 3 and all(r['anchors'] > 0 for r in out['per_batch'])
    # the study config weights the foreground only
    assert out['normalise'] == 'foreground'
    rho = [r['spearman_coef_loss'] for r in out['per_batch']]
    assert out['spearman_coef_loss_mean'] == pytest.approx(np.mean(rho))
    assert out['spearman_coef_loss_batches_above_0'] == sum(r > 0 for r in rho)
    assert set(out['mean_step']) == {'mean', 'adam'}  # tests/study/test_meta_signal.py
    # the same state and seeded loaders: a second call repeats the first
    np.testing.assert_allclose(np.array(meta_signal(d, 3)['hypergrads']), g, rtol=1e-6)
    with pytest.raises(ValueError, match='needs >= 2 batches'):
        meta_signal(d, 1)
    focal = diag.AnchorDiagnostics(_tiny_cfg('focal'), 'init', seed=0)
    with pytest.raises(ValueError, match='needs a MetaWeightNetWeighter config; none'):
        meta_signal(focal, 2)


def test_ghmr_profile_is_the_heads_box_loss_gradient(tiny_data):
    """As the head bins it (the GHM config's head: over all levels at once): the profile's summed
    gradient ratio is the head's own GHM-R loss gradient on the box predictions (no moving
    average) times the number of positives."""
    from mmdet.models.utils import unpack_gt_instances
    cfg = _tiny_cfg('ghm')
    # the paper's GHM-R (an untrained detector's mu='auto' has no mu yet)
    cfg.model.bbox_head.loss_bbox.update(momentum=0.0, mu=0.02, loss_weight=10.0,
                                         paper_exact=True)
    d = diag.AnchorDiagnostics(cfg, 'init', seed=0)
    prof = d.ghmr_profile(1)
    assert prof['batches'] == 1 and prof['bins'] == 10 and prof['loss_weight'] == 10.0
    assert sum(prof['bin_frac']) == pytest.approx(1.0) and prof['elements'] % 4 == 0
    num_pos = prof['elements'] // 4
    with DefaultScope.overwrite_default_scope(d.scope):
        data = d.model.data_preprocessor(next(iter(d.train_loader())), True)
        cls_scores, bbox_preds = d.head(d.model.extract_feat(data['inputs']))
        bbox_preds = [b.detach().requires_grad_() for b in bbox_preds]
        gts, ignores, metas = unpack_gt_instances(data['data_samples'])
        losses = d.head.loss_by_feat(cls_scores, bbox_preds, gts, metas, ignores)
        box_loss = losses['loss_bbox']  # one per level, or one over all levels (joint head)
        grads = torch.autograd.grad(sum(box_loss) if isinstance(box_loss, list) else box_loss,
                                    bbox_preds)
    total = sum(float(g.abs().sum()) for g in grads) * num_pos
    assert prof['mean_grad_ratio'] * prof['elements'] == pytest.approx(total, rel=1e-4)
    # a focal detector is profiled with the paper's GHM-R settings
    focal = diag.AnchorDiagnostics(_tiny_cfg('focal'), 'init', seed=0).ghmr_profile(1)
    assert focal['mu'] == 0.02 and focal['elements'] == prof['elements']


def test_diagnose_tool_writes_the_ghmr_profile(tiny_data, tmp_path):
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location(
        'diagnose_tool', Path(__file__).resolve().parents[2] / 'tools' / 'diagnose.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    config = tmp_path / 'ghm.py'
    _tiny_cfg('ghm').dump(str(config))
    tool.main([str(config), 'init', '--out', str(tmp_path / 'out'), '--batches', '1',
               '--gradient-share'])
    share = json.loads((tmp_path / 'out' / 'gradient_share.json').read_text())
    assert share['loss'] == 'GHMC' and share['batches'] == 1
    for key in ('focal_per_level', 'focal_all_levels', 'config_per_level', 'config_all_levels'):
        assert sum(share[key]['positive']) + sum(share[key]['negative']) == pytest.approx(1.0,
                                                                                         abs=1e-3)
    # focal loss sums over anchors: one call or one per level, the same shares
    assert share['focal_per_level'] == share['focal_all_levels']
    assert share['config_per_level'] != share['config_all_levels']
    prof = json.loads((tmp_path / 'out' / 'ghmr_profile.json').read_text())  # GHM-R: always
    assert prof['mu'] == 0.02 and sum(prof['bin_frac']) == pytest.approx(1.0)
    assert (tmp_path / 'out' / 'ghmr_profile.png').stat().st_size > 1000
    config = tmp_path / 'focal.py'
    _tiny_cfg('focal').dump(str(config))
    tool.main([str(config), 'init', '--out', str(tmp_path / 'focal'), '--batches', '1'])
    assert not (tmp_path / 'focal' / 'ghmr_profile.json').exists()  # only when asked
    tool.main([str(config), 'init', '--out', str(tmp_path / 'focal'), '--batches', '1',
               '--ghmr-profile'])
    assert (tmp_path / 'focal' / 'ghmr_profile.json').exists()
