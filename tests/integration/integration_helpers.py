"""Shared by the integration tests: the repository's configs shrunk to a few tiny iterations,
built into an in-process mmengine Runner."""
import copy
import math
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mmreweight  # noqa: F401  (registers components, installs safe checkpoint loading)
from mmreweight.registry import HOOKS

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs'
#: the study's variant and oracle configs, found by name after the user-facing ones
STUDY_CONFIGS = REPO / 'projects' / 'reweighting_study' / 'configs'
#: benchmark sizes small enough to generate in about a second
TINY = dict(train_images=48, val_images=16, test_images=16, meta_images=16)


def config_path(config: str) -> Path:
    """``configs/<config>``, or the study project's config of that name."""
    for folder in (CONFIGS, STUDY_CONFIGS):
        if (folder / config).exists():
            return folder / config
    raise FileNotFoundError(f'{config} is in neither {CONFIGS} nor {STUDY_CONFIGS}')


def _shrink_datasets(node: Any, bench: Dict[str, int]) -> None:
    """Give every embedded-benchmark dataset config (however deep, e.g. a hook's clean
    dataloader) the tiny sizes, and every dataloader no worker processes."""
    if isinstance(node, dict):
        if 'benchmark' in node and isinstance(node['benchmark'], dict):
            node['benchmark'].update(bench)
        if 'num_workers' in node:
            node['num_workers'] = 0
            node['persistent_workers'] = False
        for value in node.values():
            _shrink_datasets(value, bench)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _shrink_datasets(value, bench)


def tiny_cfg(config: str, work_dir, iters: int, batch_size: int = 4,
             ckpt_interval: Optional[int] = None, bench: Optional[Dict[str, int]] = None,
             deterministic: bool = True) -> Config:
    """``configs/<config>`` for ``iters`` iterations on the tiny benchmark, no validation, a
    checkpoint every ``ckpt_interval`` iterations (only the last one if None), CPU, seeded.

    The learning rate warms up linearly from 10% over the run, so a resume must also restore the
    scheduler (and meta weighters see a changing inner step size).
    """
    cfg = Config.fromfile(str(config_path(config)))
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'none'
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters + 1)
    for name in ('val', 'test'):  # none: a few seconds of COCO evaluation saved per run
        cfg[f'{name}_cfg'] = cfg[f'{name}_dataloader'] = cfg[f'{name}_evaluator'] = None
    cfg.train_dataloader.batch_size = batch_size
    for hook in cfg.get('custom_hooks', []):
        if 'clean_dataloader' in hook:
            hook['clean_dataloader']['batch_size'] = batch_size
        if 'begin' in hook:  # a config's warm-up would leave the method off in a short run
            hook['begin'] = 0
    cfg_dict = cfg._cfg_dict.to_dict()
    _shrink_datasets(cfg_dict, dict(TINY, **(bench or {})))
    cfg = Config(cfg_dict, filename=cfg.filename)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                                end=max(iters, 1))]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=ckpt_interval or iters, max_keep_ckpts=-1)
    cfg.log_processor = dict(type='LogProcessor', window_size=1, by_epoch=False)
    cfg.randomness = dict(seed=0, deterministic=deterministic)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.visualizer = dict(type='DetLocalVisualizer', vis_backends=[], name='visualizer')
    # unique names: runners created within the same second must not share a MessageHub
    cfg.experiment_name = f'it_{uuid.uuid4().hex[:12]}'
    return cfg


def build_runner(cfg: Config) -> Runner:
    return Runner.from_cfg(copy.deepcopy(cfg))


@HOOKS.register_module(force=True)
class RecordBatchesHook(Hook):
    """Records the image ids of every training batch and the loss of every iteration."""
    priority = 'LOWEST'

    def __init__(self):
        self.batches: List[List[int]] = []
        self.losses: List[Dict[str, float]] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.batches.append([s.img_id for s in data_batch['data_samples']])

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append({k: float(v.detach()) for k, v in (outputs or {}).items()})


class Interrupted(Exception):
    """Stands for a killed process."""


@HOOKS.register_module(force=True)
class InterruptHook(Hook):
    """Raises :class:`Interrupted` after iteration ``at`` (after its checkpoint is written)."""
    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW)

    def __init__(self, at: int):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:  # runner.iter is incremented after this hook point
            raise Interrupted(f'stopped after iteration {self.at}')


@HOOKS.register_module(force=True)
class PoisonLogitsHook(Hook):
    """Makes the classification output non-finite from iteration ``at`` on (the hook runs after
    the runner's weight init, which would undo a change made before ``train()``)."""

    def __init__(self, at=1):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.at:
            with torch.no_grad():
                runner.model.bbox_head.retina_cls.bias[0] = float('inf')


def add_hooks(cfg: Config, *hooks: dict) -> Config:
    cfg = copy.deepcopy(cfg)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + list(hooks)
    return cfg


def find_hook(runner: Runner, cls):
    return next(h for h in runner.hooks if isinstance(h, cls))


def all_finite(values) -> bool:
    return all(math.isfinite(v) for v in values)


def tensors_close(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor], atol: float,
                  rtol: float = 0.0) -> List[str]:
    """Keys whose tensors differ (or are missing on one side)."""
    bad = sorted(set(a) ^ set(b))
    for k in sorted(set(a) & set(b)):
        x, y = torch.as_tensor(a[k]), torch.as_tensor(b[k])
        if x.shape != y.shape or x.dtype != y.dtype:
            bad.append(k)
        elif x.is_floating_point():
            if not torch.allclose(x, y, atol=atol, rtol=rtol):
                bad.append(k)
        elif not torch.equal(x, y):
            bad.append(k)
    return bad
