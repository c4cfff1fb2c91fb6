"""The config handling that ``tools/train.py`` and ``tools/test.py`` share."""
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .coco_checks import check_annotation_files
from .distributed import setup_cpu_distributed, uses_cpu_distributed

ALL_DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


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


def checks_annotation_files(cfg: Config) -> bool:
    """False if the config's ``DatasetCheckHook`` says ``check_annotation_files=False`` (the
    switch for files too large to read twice, such as COCO train2017's)."""
    hook = (cfg.get('default_hooks') or {}).get('dataset_check')
    return not isinstance(hook, dict) or hook.get('check_annotation_files', True) is not False


def build_runner(cfg: Config, dataloaders: Sequence[str] = ALL_DATALOADERS) -> Runner:
    """Build the runner; on a machine without a GPU, data parallelism goes through gloo first.

    First the COCO annotation files of ``dataloaders`` and of hooks' dataloaders (a meta hook's
    clean subset) are checked (:func:`~.coco_checks.check_annotation_files`): mmdet fails on a
    missing, truncated or empty file, or on class names the file lacks, with errors that name
    neither the file nor the fix, or builds a silently wrong dataset.
    """
    if checks_annotation_files(cfg):
        check_annotation_files(cfg, dataloaders)
    if uses_cpu_distributed(cfg.launcher):
        setup_cpu_distributed(cfg)
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
