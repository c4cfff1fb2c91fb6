"""Evaluate a checkpoint (mmdet's tools/test.py, with mmreweight registered).

    python tools/test.py configs/retinanet_ghm.py work_dirs/retinanet_ghm/iter_1500.pth
    mim test mmreweight configs/retinanet_ghm.py --checkpoint work_dirs/retinanet_ghm/iter_1500.pth
"""
import argparse
import sys
import json
import os
import os.path as osp

# Run from a checkout, use the checkout's mmreweight (not an older installed copy); the copy that
# `mim` runs from <site-packages>/mmreweight/.mim/tools has no package beside it and skips this.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_REPO, 'mmreweight', '__init__.py')):
    sys.path.insert(0, _REPO)

from mmengine.config import DictAction

import mmreweight  # noqa: F401  (registers components, installs safe checkpoint loading)
from mmreweight.engine.runner_config import build_runner, load_run_config


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save evaluation results')
    parser.add_argument('--out', help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--metrics-out', help='also write the evaluation metrics to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    cfg = load_run_config(args.config, args.launcher, args.cfg_options, args.work_dir)
    cfg.load_from = args.checkpoint
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError('--out must be a .pkl or .pickle file')
        cfg.test_evaluator = [cfg.test_evaluator, dict(type='DumpDetResults', out_file_path=args.out)]
    runner = build_runner(cfg, dataloaders=('test_dataloader',))
    metrics = runner.test()
    if args.metrics_out and runner.rank == 0:
        os.makedirs(osp.dirname(osp.abspath(args.metrics_out)), exist_ok=True)
        with open(args.metrics_out, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint, metrics=metrics), f,
                      indent=1)


if __name__ == '__main__':
    main()
