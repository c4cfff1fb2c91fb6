"""MentorNet-DD data collection on a tiny RetinaNet, and the tool's config helpers."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmreweight.registry import MODELS
from mmreweight.weighting.mentornet.dd_data import (anchor_cls_losses, collect_dd_batch,
                                                    corrupt_instances)

C = 3
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def tiny_retinanet():
    cfg = dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0.] * 3, std=[255.] * 3,
                               bgr_to_rgb=False, pad_size_divisor=32),
        backbone=dict(type='ResNet', depth=18, base_channels=8, stem_channels=8, num_stages=4,
                      out_indices=(1, 2, 3), norm_eval=False, style='pytorch'),
        neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=16, start_level=0,
                  add_extra_convs=False, num_outs=3),
        bbox_head=dict(
            type='RetinaHead', num_classes=C, in_channels=16, stacked_convs=1, feat_channels=16,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=1, ratios=[1.0], strides=[8, 16, 32]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                            target_stds=[1.] * 4),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                          loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                                     min_pos_iou=0, ignore_iof_thr=-1),
                       sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1,
                       debug=False),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.5), max_per_img=10))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmreweight'):
        model = MODELS.build(cfg)
    model.init_weights()
    torch.nn.init.normal_(model.bbox_head.retina_cls.weight, std=0.3)  # non-degenerate scores
    return model.eval()


def batch():
    g = torch.Generator().manual_seed(0)
    boxes = [torch.tensor([[4., 4, 36, 36], [30, 20, 62, 50], [10, 40, 40, 62]]),
             torch.tensor([[0., 0, 32, 32], [32, 32, 64, 64], [16, 8, 48, 40]])]
    labels = [torch.tensor([0, 1, 2]), torch.tensor([2, 2, 1])]
    samples = []
    for b, lab in zip(boxes, labels):
        s = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                        scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData(bboxes=b, labels=lab)
        samples.append(s)
    inputs = [torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8)
              for _ in samples]
    return dict(inputs=inputs, data_samples=samples)


def test_corrupt_instances_flips_exact_count_and_copies():
    gt = [s.gt_instances for s in batch()['data_samples']]
    noisy = corrupt_instances(gt, 'uniform', 0.5, C, np.random.default_rng(0))
    before = torch.cat([g.labels for g in gt])
    after = torch.cat([g.labels for g in noisy])
    assert int((before != after).sum()) == 3  # round(0.5 * 6)
    assert torch.equal(before, torch.tensor([0, 1, 2, 2, 2, 1]))  # originals untouched
    assert all(torch.equal(a.bboxes, b.bboxes) for a, b in zip(gt, noisy))
    pair = corrupt_instances(gt, 'pairflip', 0.5, C, np.random.default_rng(0))
    flipped = torch.cat([g.labels for g in pair]) != before
    assert torch.equal(torch.cat([g.labels for g in pair])[flipped], (before[flipped] + 1) % C)


def test_anchor_losses_sum_to_retinahead_loss():
    model = tiny_retinanet()
    data = model.data_preprocessor(batch(), False)
    metas = [s.metainfo for s in data['data_samples']]
    gt = [s.gt_instances for s in data['data_samples']]
    with torch.no_grad():
        cls_scores, bbox_preds = model.bbox_head(model.extract_feat(data['inputs']))
        loss, labels, lw = anchor_cls_losses(model.bbox_head, cls_scores, gt, metas)
        ref = model.bbox_head.loss_by_feat(cls_scores, bbox_preds, gt, metas)['loss_cls']
    num_pos = int(((labels < C) & (lw > 0)).sum())
    assert num_pos > 0
    assert float(loss.sum()) / num_pos == pytest.approx(float(sum(ref)), rel=1e-4)


def test_collect_dd_batch_targets_and_losses():
    model = tiny_retinanet()
    rec = collect_dd_batch(model, batch(), 'uniform', 0.5, np.random.default_rng(0),
                           neg_per_image=20, generator=torch.Generator().manual_seed(0))
    data = model.data_preprocessor(batch(), False)
    metas = [s.metainfo for s in data['data_samples']]
    with torch.no_grad():
        cls_scores, _ = model.bbox_head(model.extract_feat(data['inputs']))
        true_loss, labels, lw = anchor_cls_losses(
            model.bbox_head, cls_scores, [s.gt_instances for s in data['data_samples']], metas)
    valid_pos = (labels < C) & (lw > 0)
    assert int(rec['is_pos'].sum()) == int(valid_pos.sum())  # every positive kept
    assert int((~rec['is_pos']).sum()) == 2 * 20  # neg_per_image negatives per image
    unclean = ~rec['clean']
    assert unclean.any() and rec['is_pos'][unclean].all()  # corruption only hits positives
    # recorded losses are under the corrupted labels: equal to the true-label loss iff clean
    same = torch.isclose(rec['loss'], true_loss.reshape(-1)[rec['index']], rtol=0, atol=1e-7)
    assert torch.equal(same, rec['clean'])


def _tool():
    spec = importlib.util.spec_from_file_location(
        'train_mentornet_dd', osp.join(ROOT, 'tools', 'train_mentornet_dd.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tool_config_helpers():
    tool = _tool()
    cfg = Config(dict(
        train_cfg=dict(max_iters=1500),
        train_dataloader=dict(batch_size=8, persistent_workers=True,
                              sampler=dict(type='InfiniteSampler'),
                              batch_sampler=dict(type='AspectRatioBatchSampler'),
                              dataset=dict(type='EmbeddedDetectionDataset', split='train',
                                           benchmark=dict(noise_type='pairflip',
                                                          noise_rate=0.4)))))
    loader = tool.clean_dataloader_cfg(cfg)
    assert loader['dataset']['split'] == 'meta' and 'batch_sampler' not in loader
    assert loader['sampler'] == dict(type='DefaultSampler', shuffle=False)
    assert cfg.train_dataloader.dataset.split == 'train'  # the config is not modified
    assert tool.noise_settings(cfg) == ('pairflip', 0.4)
    assert tool.noise_settings(cfg, 'uniform', 0.2) == ('uniform', 0.2)
    assert tool.checkpoint_progress(cfg, dict(iter=500)) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match='--progress'):
        tool.checkpoint_progress(Config(dict(train_cfg=dict())), dict(iter=5))


def test_tool_refuses_estimate_from_without_auto():
    with pytest.raises(ValueError, match='needs --noise-rate auto'):
        _tool().main(['c.py', 'a.pth', '--out', 'm.pth', '--noise-rate', '0.3',
                      '--estimate-from', 'b.pth'])


def test_tool_takes_cfg_options():
    args = _tool().parse_args(['c.py', 'a.pth', '--out', 'm.pth', '--cfg-options',
                               'train_dataloader.dataset.benchmark.seed=3', 'model.x=[1,2]'])
    cfg = Config(dict(train_dataloader=dict(dataset=dict(benchmark=dict(seed=0))), model={}))
    cfg.merge_from_dict(args.cfg_options)
    assert cfg.train_dataloader.dataset.benchmark.seed == 3 and cfg.model.x == [1, 2]


def test_tool_fits_a_mentor_without_being_told_the_noise(tmp_path, monkeypatch):
    """--noise-rate auto: the rate estimated from the detector's label-issue scores, the noise
    uniform although the benchmark's is pair-flip."""
    from mmengine.runner import save_checkpoint

    from mmreweight.analysis.diagnostics import AnchorDiagnostics
    from mmreweight.weighting.mentornet.dd import load_mentor
    monkeypatch.setenv('MMREWEIGHT_DATA_ROOT', str(tmp_path / 'data'))
    config = osp.join(ROOT, 'configs', 'retinanet_focal.py')
    cfg = Config.fromfile(config)
    ckpt = tmp_path / 'init.pth'
    save_checkpoint(AnchorDiagnostics(cfg, 'init', seed=0, with_weighter=False).model.state_dict(),
                    str(ckpt))
    bench = dict(train_images=48, val_images=16, test_images=16, meta_images=16,
                 noise_type='pairflip', noise_rate=0.4)
    opts = [f'train_dataloader.dataset.benchmark.{k}={v}' for k, v in bench.items()]
    opts += ['train_dataloader.batch_size=8', 'train_dataloader.num_workers=0']
    other = tmp_path / 'other.pth'  # another detector to estimate from, with other weights
    model = AnchorDiagnostics(cfg, 'init', seed=1, with_weighter=False).model
    save_checkpoint(model.state_dict(), str(other))
    out = tmp_path / 'mentor.pth'
    tool = _tool()
    tool.main([config, str(ckpt), '--progress', '1.0', '--out', str(out), '--noise-rate', 'auto',
               '--estimate-from', str(other), '--max-batches', '1', '--steps', '5',
               '--device', 'cpu', '--cfg-options', *opts])
    _, _, meta = load_mentor(str(out))
    estimate = meta['noise_estimate']
    assert [e['checkpoint'] for e in estimate['all']] == [str(ckpt), str(other)]
    assert estimate['noise_rate'] == max(e['noise_rate'] for e in estimate['all'])
    assert meta['noise_type'] == 'uniform'
    low, high = tool.FIT_RATE_RANGE
    assert meta['noise_rate'] == pytest.approx(min(max(estimate['noise_rate'], low), high))
    assert estimate['clean_flagged_fraction'] <= tool.ESTIMATE_FPR
    assert 0.0 <= estimate['noise_rate'] <= 1.0
