"""How a Meta-Weight-Net run's VNet moved over training, from its work directory.

    python tools/train.py configs/retinanet_mwnet.py --work-dir work_dirs/mwnet --cfg-options \\
        default_hooks.checkpoint.interval=100 default_hooks.checkpoint.max_keep_ckpts=-1
    python tools/vnet_trajectory.py work_dirs/mwnet --out work_dirs/mwnet/vnet

Reads every ``iter_N.pth`` (the VNet and its optimizer state the hook saves) and the run's logged
``meta_hypergrad_log10``, and writes ``vnet_trajectory.json`` (per checkpoint: VNet(loss) on a grid,
|phi|, weight decay x |phi|, Adam's |m|) and ``vnet_trajectory.png`` (the weighting function at
some checkpoints; the norms over iterations). See :mod:`reweighting_study.vnet_trajectory`.
"""
import argparse
import json
import os
import sys

# The checkout's mmreweight and this project's reweighting_study, not installed copies.
_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REPO = os.path.dirname(os.path.dirname(_PROJECT))
sys.path[:0] = [_REPO, _PROJECT]

import numpy as np  # noqa: E402

import mmreweight  # noqa: E402,F401  (safe checkpoint loading)
from reweighting_study.vnet_trajectory import plot, trajectory  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('work_dir', help='the MW-Net run\'s work directory (iter_N.pth checkpoints)')
    p.add_argument('--out', help='output folder (default: WORK_DIR/vnet_trajectory)')
    p.add_argument('--max-loss', type=float, default=5.0, help='loss grid: 0 .. this')
    p.add_argument('--curves', type=int, default=8,
                   help='checkpoints drawn in the weighting-function panel (evenly spaced)')
    p.add_argument('--name', default='', help='title of the norms panel')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.curves < 1:
        raise SystemExit(f'--curves must be >= 1, got {args.curves}')
    traj = trajectory(args.work_dir, np.linspace(0.0, args.max_loss, 101).tolist())
    out = args.out or os.path.join(args.work_dir, 'vnet_trajectory')
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'vnet_trajectory.json'), 'w') as f:
        json.dump(traj, f)
    iters = [p['iter'] for p in traj['points']]
    picks = sorted({iters[int(round(i))]
                    for i in np.linspace(0, len(iters) - 1, min(args.curves, len(iters)))})
    path = plot(traj, os.path.join(out, 'vnet_trajectory.png'), args.name, picks)
    for p in traj['points']:
        curve = p['curve']
        print(f"iter {p['iter']:>6}: VNet {min(curve):.3f}..{max(curve):.3f}  "
              f"log10 |phi| {np.log10(p['phi_norm']):.2f}  "
              f"weight decay x |phi| {p['decay_term']:.2e}"
              + (f"  Adam |m| {p['adam_m_norm']:.2e}" if p['adam_m_norm'] else ''))
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
