"""Shared by the entry-point tests: running a command line, and the `--cfg-options` that shrink an
embedded config to a few iterations on the tiny benchmark without worker processes."""
import subprocess
from typing import List, Optional

#: benchmark sizes small enough to generate in about a second
TINY = dict(train_images=48, val_images=16, test_images=16, meta_images=16)


def run(cmd, cwd, env, timeout: Optional[float] = None) -> str:
    """Run ``cmd``; fail with the end of its output unless it exits 0; its stdout + stderr."""
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout + proc.stderr


def tiny_options(iters: int, batch_size: int = 4) -> List[str]:
    """``--cfg-options`` for ``iters`` iterations, a checkpoint every ``iters // 2`` (at least 1),
    no LR schedule and no dataloader workers."""
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={max(iters // 2, 1)}',
            'default_hooks.logger.interval=1', 'param_scheduler=[]',
            f'train_dataloader.batch_size={batch_size}']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
        opts += [f'{loader}.dataset.benchmark.{k}={v}' for k, v in TINY.items()]
    return opts
