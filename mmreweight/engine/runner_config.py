"""The config handling that ``tools/train.py`` and ``tools/test.py`` share."""
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .distributed import setup_cpu_distributed, uses_cpu_distributed


def load_run_config(config: str, launcher: str = 'none', cfg_options: Optional[dict] = None,
                    work_dir: Optional[str] = None) -> Config:
    """Read ``config``, apply ``--cfg-options`` and ``--work-dir`` (default
    ``./work_dirs/<config name>``) as mmdet's tools do, and record the launcher."""
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def build_runner(cfg: Config) -> Runner:
    """Build the runner; on a machine without a GPU, data parallelism goes through gloo first."""
    if uses_cpu_distributed(cfg.launcher):
        setup_cpu_distributed(cfg)
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
