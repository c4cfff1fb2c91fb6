"""Data-parallel training on CPU: two gloo ranks with batch b make the same first update as one
process with batch 2b, through mmengine's ``MMDistributedDataParallel`` and each mmreweight loss;
and ``torchrun tools/train.py --launcher pytorch`` trains on a machine without a GPU.

Both ranks get images with the same box layout (different pixels), so each rank's RetinaNet
``avg_factor`` (its own number of positives) is half the single process's: DDP's mean of per-rank
losses then *is* the 2b loss, and any statistic that is not reduced across ranks (GHM's bin
counts) shows up as a different update.
"""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from mmreweight.testing.distributed import free_port, gloo_process_group

REPO = Path(__file__).resolve().parents[2]
WORLD = 2
LOSSES = {
    'focal': dict(head='mmreweight.ReweightRetinaHead',
                  loss_cls=dict(type='mmreweight.FocalLoss', use_sigmoid=True)),
    # the paper's losses: what DDP must reproduce is the histogram sync (without a runner the
    # warm-up would follow whatever iteration an earlier runner left in this process's MessageHub)
    'ghm': dict(head='mmreweight.LevelAwareRetinaHead',
                loss_cls=dict(type='mmreweight.GHMC', bins=30, momentum=0.75, use_sigmoid=True,
                              paper_exact=True),
                loss_bbox=dict(type='mmreweight.GHMR', mu=0.02, bins=10, momentum=0.7,
                               loss_weight=10.0, paper_exact=True)),
    # the configs' GHM: one density over all levels, GHM-C's positives and negatives balanced
    'ghm_all_levels': dict(head='mmreweight.JointLevelRetinaHead',
                           loss_cls=dict(type='mmreweight.GHMC', bins=30, momentum=0.75,
                                         use_sigmoid=True, paper_exact=True, num_levels=1,
                                         alpha=0.25),
                           loss_bbox=dict(type='mmreweight.GHMR', mu=0.02, bins=10, momentum=0.7,
                                          loss_weight=10.0, paper_exact=True, num_levels=1)),
    'cb_focal': dict(head='mmreweight.ReweightRetinaHead',
                     loss_cls=dict(type='mmreweight.CBFocalLoss', use_sigmoid=True, num_classes=3,
                                   class_counts=[50, 10, 2], beta=0.99)),
}


def _model(name):
    from mmreweight.testing.tiny_retinanet import tiny_retinanet_cfg
    from mmreweight.registry import MODELS
    from mmengine.registry import DefaultScope
    spec = LOSSES[name]
    cfg = tiny_retinanet_cfg(head_type=spec['head'], loss_cls=spec['loss_cls'])
    # BN statistics are per rank by design (SyncBN is a separate choice): use GN to compare updates
    cfg['backbone']['norm_cfg'] = dict(type='GN', num_groups=4, requires_grad=True)
    if 'loss_bbox' in spec:
        cfg['bbox_head']['loss_bbox'] = spec['loss_bbox']
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmreweight'):
        model = MODELS.build(cfg)
    return model.train()


def _data():
    """Four 64x64 images; images 2 and 3 reuse the boxes of images 0 and 1."""
    from mmreweight.testing.tiny_retinanet import synthetic_batch
    inputs, samples = synthetic_batch(num_images=4, seed=3)
    for src, dst in ((0, 2), (1, 3)):
        samples[dst].gt_instances.bboxes = samples[src].gt_instances.bboxes.clone()
    images = [(x * 40 + 100).clamp(0, 255) for x in inputs]
    return images, samples


def _step(model, images, samples):
    from mmengine.optim import OptimWrapper
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.05))
    model.train_step(dict(inputs=images, data_samples=samples), optim)


def _worker(rank, port, out_dir):
    with gloo_process_group(rank, WORLD, port):
        import mmreweight  # noqa: F401
        from mmengine.model import MMDistributedDataParallel
        images, samples = _data()
        part = slice(rank * 2, rank * 2 + 2)
        result = {}
        for name in LOSSES:
            model = MMDistributedDataParallel(module=_model(name), device_ids=None,
                                              broadcast_buffers=False)
            _step(model, images[part], copy.deepcopy(samples[part]))
            result[name] = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
        torch.save(result, os.path.join(out_dir, f'rank{rank}.pth'))


@pytest.fixture(scope='module')
def ddp_states(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp')
    mp.spawn(_worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f'rank{r}.pth', weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize('name', list(LOSSES))
def test_two_ranks_make_the_single_process_update(name, ddp_states):
    import mmreweight  # noqa: F401
    images, samples = _data()
    model = _model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # one thread, as the ranks: another thread count sums the convolutions in another order, and
    # GHM's bins are discontinuous in g, so a last-bit difference can move an element across a
    # bin edge (seen with 2 threads: 2e-4 in a conv weight after the step)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _step(model, images, samples)
    finally:
        torch.set_num_threads(threads)
    moved = 0
    for key, single in model.state_dict().items():
        for rank_state in ddp_states:
            torch.testing.assert_close(rank_state[name][key], single, rtol=1e-4, atol=1e-6,
                                       msg=lambda m: f'{name}: {key} differs: {m}')
        moved += int(not torch.equal(before[key], single))
    assert moved > 10  # the step really changed the detector


@pytest.mark.slow
def test_torchrun_trains_on_cpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('exercises the CPU (gloo) path')
    tiny = dict(train_images=16, val_images=8, test_images=8, meta_images=8)
    opts = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'param_scheduler=[]',
            'train_dataloader.batch_size=2']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
        opts += [f'{loader}.dataset.benchmark.{k}={v}' for k, v in tiny.items()]
    env = dict(os.environ, MMREWEIGHT_DATA_ROOT=str(tmp_path / 'data'), OMP_NUM_THREADS='1')
    # make the data first, so the two ranks do not both generate it
    subprocess.run([sys.executable, REPO / 'tools' / 'make_benchmark.py',
                    *[f'--{k.replace("_", "-")}={v}' for k, v in tiny.items()]],
                   env=env, check=True, capture_output=True)
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={free_port()}', REPO / 'tools' / 'train.py',
         REPO / 'configs' / 'retinanet_ghm.py', '--launcher', 'pytorch',
         '--work-dir', tmp_path / 'work', '--cfg-options', *opts],
        env=env, capture_output=True, text=True, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Distributed training: True' in log
    assert (tmp_path / 'work' / 'iter_2.pth').exists()
