"""Exact resume through the Runner: N iterations straight vs N/2, a crash, then resume to N.

Data order: mmengine's IterBasedTrainLoop does not save the sampler's position; on resume it
rebuilds the dataloader and draws (and drops) ``runner.iter`` batches before training. With
``InfiniteSampler(shuffle=True)`` the index stream is a pure function of the sampler's seed (the
runner's ``randomness.seed``, saved in the checkpoint and checked on resume), the pipeline has no
random transform, and ``num_workers=0``, so the resumed run sees the same batches 3..N as the
straight one. The test records the batches of both runs and checks this rather than assuming it.
Not covered: random augmentations (these configs have none). No RNG state is checkpointed; they
would match only as far as re-seeding at start-up and replaying the skipped batches reproduces
the same draws.

MetaReweightHook resumes its clean stream the same way (it draws the batches of the meta steps
already taken); the clean batches are recorded too.
"""
import copy
import json
import os

import pytest
import torch
from integration_helpers import (Interrupted, RecordBatchesHook, add_hooks, build_runner,
                                 find_hook, tensors_close, tiny_cfg)

from mmreweight.engine.checkpoint import load_checkpoint_file
from mmreweight.engine.meta_hook import CHECKPOINT_KEY, MetaReweightHook

pytestmark = pytest.mark.slow

N = 4
ATOL = 1e-6


def _record_clean_batches(runner, log):
    """Log the image ids of every clean batch the meta hook draws (resume skips included)."""
    hooks = [h for h in runner.hooks if isinstance(h, MetaReweightHook)]
    for hook in hooks:
        draw = hook._next_clean

        def recorded(draw=draw):
            batch = draw()
            log.append([s.img_id for s in batch['data_samples']])
            return batch
        hook._next_clean = recorded


def reweight_state(runner) -> dict:
    """Every piece of reweighting state, flattened to tensors (a deep copy)."""
    model = runner.model
    state = {k: v for k, v in model.state_dict().items()
             if k.endswith(('acc_sum', 'class_counts'))}
    for name, module in model.named_modules():
        if hasattr(module, 'class_weights'):  # CB weights: derived, not saved; must be rebuilt
            state[f'{name}.class_weights'] = module.class_weights
    for hook in runner.hooks:
        if isinstance(hook, MetaReweightHook):
            w = hook.weighter
            state.update({f'weighter.{k}': v for k, v in w.state_dict().items()})
            if hasattr(w, 'meta_state_dict'):  # e.g. L2RW's clean-gradient average
                state.update({f'weighter.{k}': v for k, v in _flatten(w.meta_state_dict()).items()})
            if hasattr(w, 'optim_wrapper'):  # MW-Net's VNet optimizer (Adam moments, steps)
                for i, s in w.optim_wrapper.state_dict()['state'].items():
                    state.update({f'vnet_optim.{i}.{k}': torch.as_tensor(v)
                                  for k, v in s.items()})
    return copy.deepcopy({k: v.detach().clone() for k, v in state.items()})


def optimizer_state(runner) -> dict:
    opt = runner.optim_wrapper.state_dict()
    out = {f'{i}.{k}': torch.as_tensor(v) for i, s in opt['state'].items() for k, v in s.items()}
    out.update({f'lr.{i}': torch.tensor(g['lr']) for i, g in enumerate(opt['param_groups'])})
    return out


def _run_straight(config, work_dir):
    cfg = add_hooks(tiny_cfg(config, work_dir, N, ckpt_interval=N // 2),
                    dict(type='RecordBatchesHook'))
    runner = build_runner(cfg)
    clean = []
    _record_clean_batches(runner, clean)
    runner.train()
    return runner, find_hook(runner, RecordBatchesHook), clean


def _run_interrupted_then_resumed(config, work_dir):
    cfg = tiny_cfg(config, work_dir, N, ckpt_interval=N // 2)
    first = build_runner(add_hooks(cfg, dict(type='InterruptHook', at=N // 2),
                                   dict(type='RecordBatchesHook')))
    clean = []
    _record_clean_batches(first, clean)
    with pytest.raises(Interrupted):
        first.train()
    first_batches = find_hook(first, RecordBatchesHook).batches
    clean_before = len(clean)
    ckpt = os.path.join(work_dir, f'iter_{N // 2}.pth')
    resumed_cfg = add_hooks(cfg, dict(type='RecordBatchesHook'))
    resumed_cfg.resume, resumed_cfg.load_from = True, ckpt
    resumed = build_runner(resumed_cfg)
    resumed_clean = []
    _record_clean_batches(resumed, resumed_clean)
    resumed.train()
    return (first_batches, clean[:clean_before], resumed, find_hook(resumed, RecordBatchesHook),
            resumed_clean, ckpt)


def _max_diff(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a
               if a[k].is_floating_point())


CASES = {
    'retinanet_ghm.py': ['bbox_head.loss_cls.acc_sum', 'bbox_head.loss_bbox.acc_sum'],
    'retinanet_cb_focal.py': ['bbox_head.loss_cls.class_counts',
                              'bbox_head.loss_cls.class_weights'],
    'retinanet_mwnet.py': ['weighter.vnet.fc1.weight', 'weighter.vnet.fc2.bias',
                           'vnet_optim.0.exp_avg', 'vnet_optim.0.exp_avg_sq', 'vnet_optim.0.step'],
    'retinanet_mentornet.py': ['weighter.pct_ema.value', 'weighter.pct_ema.initialised'],
    'retinanet_l2rw_head_ema.py': ['weighter.clean_grad_avg.0', 'weighter.clean_grad_avg.5'],
}


@pytest.mark.parametrize('config', list(CASES))
def test_resume_is_exact(config, tmp_path, data_root):
    straight, record, straight_clean = _run_straight(config, tmp_path / 'straight')
    (first_batches, first_clean, resumed, resumed_record, resumed_clean,
     ckpt) = _run_interrupted_then_resumed(config, tmp_path / 'split')
    assert resumed.iter == straight.iter == N

    # the same data in the same order
    assert first_batches == record.batches[:N // 2]
    assert resumed_record.batches == record.batches[N // 2:], 'resumed data order differs'
    assert len(set(map(tuple, record.batches))) == N  # the order is not trivially constant
    if straight_clean:  # the resumed hook re-draws (and drops) the clean batches already used
        assert first_clean == straight_clean[:N // 2]
        assert resumed_clean == straight_clean

    # the same losses after the resume, and the same final detector, optimizer and state
    for got, want in zip(resumed_record.losses, record.losses[N // 2:]):
        assert got.keys() == want.keys()
        for k in got:
            assert abs(got[k] - want[k]) <= 1e-5 * max(1.0, abs(want[k])), (k, got, want)
    final = {k: v.detach().clone() for k, v in straight.model.state_dict().items()}
    assert tensors_close(resumed.model.state_dict(), final, ATOL) == []
    assert tensors_close(optimizer_state(resumed), optimizer_state(straight), ATOL) == []
    state, expected = reweight_state(resumed), reweight_state(straight)
    for key in CASES[config]:
        assert key in expected, (key, sorted(expected))
    assert tensors_close(state, expected, ATOL) == []

    # the comparison is sensitive: the second half moved the detector (and the state) by far
    # more than the tolerance, so a resume that restarted from scratch or dropped state would fail
    saved = load_checkpoint_file(ckpt, map_location='cpu')  # weights_only=True underneath
    half = saved['state_dict']
    assert _max_diff(final, half) > 1e3 * ATOL
    moving = [k for k in CASES[config] if not k.endswith(('class_counts', 'class_weights',
                                                          'initialised'))]
    for key in moving:
        if key.startswith('bbox_head.'):
            assert not torch.allclose(half[key].float(), expected[key].float(), atol=ATOL), key
    if 'weighter.' in ' '.join(CASES[config]):
        saved_meta = saved[CHECKPOINT_KEY]['state']
        assert saved_meta  # the weighter's state is in the checkpoint ...
        first = next(k for k in moving if k.startswith('weighter.'))
        flat = _flatten(saved_meta)
        name = first[len('weighter.'):]
        # MW-Net saves dict(vnet=..., optim_wrapper=...), others dict(weighter=state_dict())
        value = flat.get(name, flat.get(f'weighter.{name}'))
        assert value is not None, (name, sorted(flat))
        # ... and it changed in the second half
        assert not torch.allclose(value.float(), expected[first].float(), atol=ATOL)


def _flatten(tree, prefix=''):
    out = {}
    for k, v in tree.items():
        if isinstance(v, (list, tuple)):  # lists of tensors, e.g. L2RW's clean_grad_avg
            v = {str(i): x for i, x in enumerate(v)}
        if isinstance(v, dict):
            out.update(_flatten(v, f'{prefix}{k}.'))
        elif isinstance(v, torch.Tensor):
            out[f'{prefix}{k}'] = v
    return out


def test_cb_counts_are_the_training_sets(tmp_path, data_root):
    """The CB loss's counts (restored on resume above) are the instances per class of the train
    annotations, counted here from the json file."""
    runner = build_runner(tiny_cfg('retinanet_cb_focal.py', tmp_path, 1))
    runner.train()
    dataset = runner.train_dataloader.dataset
    with open(dataset.ann_file) as f:
        coco = json.load(f)
    classes = list(dataset.metainfo['classes'])
    names = {c['id']: c['name'] for c in coco['categories']}
    want = torch.zeros(len(classes), dtype=torch.long)
    for ann in coco['annotations']:
        if not ann.get('iscrowd', 0):
            want[classes.index(names[ann['category_id']])] += 1
    assert want.sum() > 0
    assert torch.equal(runner.model.bbox_head.loss_cls.class_counts, want)
