"""Forward+backward time and peak memory of mmreweight's losses against mmdet's, side by side.

Inputs are RetinaNet-sized: ``--batch`` images of ``--image-size`` pixels, 5 FPN levels (strides
8-128), 9 anchors per position and 80 classes (2 x 76,725 anchors at 640 px), with the loss
called once per level as a dense head does, then one backward through all levels. Logits are
drawn around RetinaNet's prior (sigmoid ~ 0.01), 0.2% of the anchors are positives of random
classes and 1% are ignored (weight 0).

Time: the fastest of ``--reps`` interleaved runs (ours, mmdet, ours, ...) after one warm-up; the
minimum rather than the median because other processes share the CPU, and they only add time.

Memory:
* CUDA: ``torch.cuda.max_memory_allocated`` during the run minus what was allocated before.
* CPU: growth of the process's peak resident set (``VmHWM``, reset through
  ``/proc/self/clear_refs``) over the resident set before the run. This is what the loss's
  forward and backward need on top of their inputs: saved activations, temporaries and the
  logits' gradient. It is measured in a child process run with ``MALLOC_MMAP_THRESHOLD_=65536``
  so that glibc returns freed tensor memory to the OS and one run's leftovers do not hide the
  next one's peak (that setting slows allocation, so times are taken in the parent without
  it); the figure is rounded to pages and includes allocator overhead.

Usage::

    python tools/benchmark_losses.py            # full size (slow on CPU: mmdet's GHM loops)
    python tools/benchmark_losses.py --small    # 320 px, 3 repetitions
"""
import argparse
import gc
import json
import os
import re
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

import torch

STRIDES = (8, 16, 32, 64, 128)
ANCHORS = 9
NUM_CLASSES = 80


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--small', action='store_true', help='320 px images, 3 repetitions')
    parser.add_argument('--image-size', type=int, default=640)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--reps', type=int, default=5)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--losses', nargs='+',
                        default=['focal', 'ghmc', 'ghmr', 'cb_focal', 'ghmc_warmup', 'ghmr_warmup',
                                 'ghmc_joint', 'ghmr_joint'],
                        choices=['focal', 'ghmc', 'ghmr', 'cb_focal', 'ghmc_warmup',
                                 'ghmr_warmup', 'ghmc_joint', 'ghmr_joint'])
    parser.add_argument('--memory-child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.small:
        args.image_size, args.reps = 320, 3
    return args


# ------------------------------------------------------------------------------ inputs
def make_levels(image_size: int, batch: int, device: str, seed: int = 0) -> List[Dict]:
    """Per FPN level: logits, class labels (80 = background), label weights and box tensors."""
    g = torch.Generator().manual_seed(seed)
    levels = []
    for stride in STRIDES:
        side = -(-image_size // stride)
        n = batch * side * side * ANCHORS
        u = torch.rand(n, generator=g)
        labels = torch.full((n, ), NUM_CLASSES, dtype=torch.long)
        positive = u < 0.002
        labels[positive] = torch.randint(0, NUM_CLASSES, (int(positive.sum()), ), generator=g)
        label_weights = (u < 0.99).float()  # the top 1% are ignored anchors
        box_weights = positive.float()[:, None].expand(n, 4).contiguous()
        levels.append(dict(
            logits=torch.randn(n, NUM_CLASSES, generator=g) * 1.5 - 4.6,
            labels=labels, label_weights=label_weights,
            avg_factor=max(float(positive.sum()), 1.0),
            box_pred=torch.randn(n, 4, generator=g) * 0.1,
            box_target=torch.randn(n, 4, generator=g) * 0.1,
            box_weights=box_weights))
    return [{k: v.to(device) if torch.is_tensor(v) else v for k, v in lv.items()}
            for lv in levels]


# ------------------------------------------------------------------------------ the contenders
def build_pairs(names: List[str]) -> Dict[str, Dict[str, Callable]]:
    """For each loss: (ours, mmdet's) functions running every level's loss and the backward."""
    from mmdet.models.losses import GHMC as MMDetGHMC
    from mmdet.models.losses import GHMR as MMDetGHMR
    from mmdet.models.losses import FocalLoss as MMDetFocalLoss

    from mmengine.logging import MessageHub

    from mmreweight.losses import GHMC, GHMR, CBFocalLoss, FocalLoss

    # the iteration a runner would report: half-way through the warm-up rows' 1,000 iterations
    MessageHub.get_instance('benchmark_losses').update_info('iter', 500)
    counts = torch.randint(1, 10000, (NUM_CLASSES, ), generator=torch.Generator().manual_seed(1))

    def per_level(loss, pred: str, target: str, weight: str) -> Callable:
        """One call per level as a head makes them, then one backward through all of them."""
        def run(levels):
            preds = [lv[pred].detach().requires_grad_(True) for lv in levels]
            total = sum(loss(p, lv[target], lv[weight], avg_factor=lv['avg_factor'])
                        for p, lv in zip(preds, levels))
            total.backward()
            return total.detach()
        return run

    def all_levels(loss, pred: str, target: str, weight: str) -> Callable:
        """One call over every level's elements concatenated (the concatenation timed too), as
        ``JointLevelRetinaHead`` makes it, then the backward."""
        def run(levels):
            preds = [lv[pred].detach().requires_grad_(True) for lv in levels]
            total = loss(torch.cat(preds), torch.cat([lv[target] for lv in levels]),
                         torch.cat([lv[weight] for lv in levels]),
                         avg_factor=sum(lv['avg_factor'] for lv in levels))
            total.backward()
            return total.detach()
        return run

    def cls(loss, call=per_level):
        return call(loss, 'logits', 'labels', 'label_weights')

    def box(loss, call=per_level):
        return call(loss, 'box_pred', 'box_target', 'box_weights')

    table = {
        'focal': dict(label='FocalLoss', ours=cls(FocalLoss()),
                      mmdet=cls(MMDetFocalLoss(use_sigmoid=True))),
        'ghmc': dict(label='GHMC (30 bins, momentum .75)',
                     ours=cls(GHMC(bins=30, momentum=0.75, paper_exact=True)),
                     mmdet=cls(MMDetGHMC(bins=30, momentum=0.75))),
        'ghmr': dict(label='GHMR (10 bins, momentum .7)',
                     ours=box(GHMR(mu=0.02, bins=10, momentum=0.7, paper_exact=True)),
                     mmdet=box(MMDetGHMR(mu=0.02, bins=10, momentum=0.7))),
        # the warm-up's cost: against our paper-exact loss (the rows above), not mmdet's
        'ghmc_warmup': dict(label='GHMC warm-up vs GHMC paper-exact',
                            ours=cls(GHMC(bins=30, momentum=0.75, warmup_iters=1000)),
                            mmdet=cls(GHMC(bins=30, momentum=0.75, paper_exact=True))),
        'ghmr_warmup': dict(label="GHMR warm-up, mu='auto' vs exact",
                            ours=box(GHMR(mu='auto', bins=10, momentum=0.7, warmup_iters=1000,
                                          mu_calibration_iters=1000)),
                            mmdet=box(GHMR(mu=0.02, bins=10, momentum=0.7, paper_exact=True))),
        # the GHM configs' losses after the warm-up (one call over all levels; GHM-C balanced)
        # against the paper-exact losses called once per level
        'ghmc_joint': dict(label='GHMC all levels, alpha vs per level',
                           ours=cls(GHMC(bins=30, momentum=0.75, paper_exact=True, alpha=0.25),
                                    all_levels),
                           mmdet=cls(GHMC(bins=30, momentum=0.75, paper_exact=True))),
        'ghmr_joint': dict(label='GHMR all levels vs per level',
                           ours=box(GHMR(mu=0.02, bins=10, momentum=0.7, paper_exact=True),
                                    all_levels),
                           mmdet=box(GHMR(mu=0.02, bins=10, momentum=0.7, paper_exact=True))),
        # mmdet has no class-balanced loss; the reference is its focal loss without class weights
        'cb_focal': dict(label='CBFocalLoss vs mmdet FocalLoss',
                         ours=cls(CBFocalLoss(NUM_CLASSES, class_counts=counts, alpha=0.25)),
                         mmdet=cls(MMDetFocalLoss(use_sigmoid=True))),
    }
    return {name: table[name] for name in names}


# ------------------------------------------------------------------------------ measurement
def _status_bytes(key: str) -> int:
    with open('/proc/self/status') as f:
        return int(re.search(key + r':\s+(\d+) kB', f.read()).group(1)) * 1024


def _can_reset_peak_rss() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_memory(fn: Callable, levels, device: str) -> Optional[int]:
    """Bytes that one forward+backward needs beyond its inputs (see the module docstring)."""
    gc.collect()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn(levels)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    if not _can_reset_peak_rss():
        return None
    base = _status_bytes('VmRSS')
    fn(levels)
    return _status_bytes('VmHWM') - base


def wall_time(fn: Callable, levels, device: str) -> float:
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn(levels)
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure_memory(args) -> Dict[str, Dict[str, Optional[float]]]:
    """MiB per loss and side, from a child process (CPU) or this one (CUDA)."""
    if args.device.startswith('cuda'):
        return _memory_here(args)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    argv = [sys.executable, os.path.abspath(__file__), '--memory-child', '--device', args.device,
            '--image-size', str(args.image_size), '--batch', str(args.batch), '--losses',
            *args.losses]
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _memory_here(args) -> Dict[str, Dict[str, Optional[float]]]:
    levels = make_levels(args.image_size, args.batch, args.device)
    memory = {}
    for name, pair in build_pairs(args.losses).items():
        memory[name] = {}
        for side in ('ours', 'mmdet'):
            pair[side](levels)  # warm-up: first-call allocations are not the loss's
            peak = peak_memory(pair[side], levels, args.device)
            memory[name][side] = None if peak is None else peak / 2**20
    return memory


def benchmark(args) -> List[Dict]:
    levels = make_levels(args.image_size, args.batch, args.device)
    rows = []
    for name, pair in build_pairs(args.losses).items():
        values = {side: pair[side](levels) for side in ('ours', 'mmdet')}  # warm-up
        times = {'ours': [], 'mmdet': []}
        for _ in range(args.reps):
            for side in ('ours', 'mmdet'):
                times[side].append(wall_time(pair[side], levels, args.device))
        rows.append(dict(name=name, label=pair['label'],
                         **{f'{side}_ms': 1000 * min(times[side]) for side in times},
                         value_diff=abs(values['ours'] - values['mmdet']).item() / max(
                             abs(values['mmdet']).item(), 1e-12)))
    memory = measure_memory(args)
    for row in rows:
        row.update(ours_mb=memory[row['name']]['ours'], mmdet_mb=memory[row['name']]['mmdet'])
    return rows


def format_table(rows: List[Dict]) -> str:
    head = (f"{'loss (vs mmdet unless named)':34s} {'ours ms':>9s} {'ref ms':>9s} {'time x':>7s} "
            f"{'ours MB':>8s} {'mmdet MB':>9s} {'mem x':>6s} {'rel. diff':>9s}")
    lines = [head, '-' * len(head)]
    for r in rows:
        mem = ('n/a', 'n/a', 'n/a') if r['ours_mb'] is None else (
            f"{r['ours_mb']:.0f}", f"{r['mmdet_mb']:.0f}", f"{r['ours_mb'] / r['mmdet_mb']:.2f}")
        lines.append(f"{r['label']:34s} {r['ours_ms']:9.1f} {r['mmdet_ms']:9.1f} "
                     f"{r['ours_ms'] / r['mmdet_ms']:7.2f} {mem[0]:>8s} {mem[1]:>9s} "
                     f"{mem[2]:>6s} {r['value_diff']:9.1e}")
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import mmreweight  # noqa: F401  (the repository's copy, registered)

    if args.memory_child:
        print(json.dumps(_memory_here(args)))
        return
    n = sum(args.batch * (-(-args.image_size // s))**2 * ANCHORS for s in STRIDES)
    print(f'device={args.device} threads={torch.get_num_threads()} torch={torch.__version__} '
          f'image={args.image_size}px batch={args.batch}: {n} anchors x {NUM_CLASSES} classes '
          f'in {len(STRIDES)} per-level calls; fastest of {args.reps} runs')
    if args.device == 'cpu':
        print('memory: peak resident-set growth during one forward+backward'
              + ('' if _can_reset_peak_rss() else ' (unavailable: /proc/self/clear_refs)'))
    else:
        print('memory: torch.cuda.max_memory_allocated growth during one forward+backward')
    print(format_table(benchmark(args)))
    print("rel. diff: |ours - mmdet| / |mmdet| of the summed loss (CBFocalLoss differs by "
          "design: class weights; the all-levels rows by design: one density for all levels, "
          "and alpha)")


if __name__ == '__main__':
    main()
