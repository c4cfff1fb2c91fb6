"""Train a detector with mmreweight's components (mmdet's tools/train.py, plus CPU DDP).

    python tools/train.py configs/retinanet_ghm.py
    mim train mmreweight configs/retinanet_ghm.py
    torchrun --nproc_per_node=2 tools/train.py configs/retinanet_ghm.py --launcher pytorch
"""
import argparse
import os
import sys

# Run from a checkout, use the checkout's mmreweight (not an older installed copy); the copy that
# `mim` runs from <site-packages>/mmreweight/.mim/tools has no package beside it and skips this.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_REPO, 'mmreweight', '__init__.py')):
    sys.path.insert(0, _REPO)

from mmengine.config import DictAction

import mmreweight  # noqa: F401  (registers components, installs safe checkpoint loading)
from mmreweight.engine.runner_config import build_runner, load_run_config


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: AmpOptimWrapper on GPU, bf16 autocast on CPU')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or the latest in the work dir if none given')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    cfg = load_run_config(args.config, args.launcher, args.cfg_options, args.work_dir)
    if args.amp:
        from mmreweight.engine.amp import enable_amp
        enable_amp(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
