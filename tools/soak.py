"""Soak test: train a config for many iterations in this process and watch memory and losses.

Every ``--every`` iterations it records the resident set size (``VmRSS`` from ``/proc``, this
process plus any dataloader workers), the time, and the latest losses; every iteration it checks
that each loss (and every logged ``train/meta_*`` / MentorNet scalar) is finite. At the end it
prints a summary and writes it, with the samples, as JSON:

* RSS at the first sample, at the end, and the maximum (MiB);
* the RSS slope in MiB per 1000 iterations, a least-squares fit over the second half of the
  samples (the first half includes warm-up: allocator growth, first-touch caches) and over all;
* the number of non-finite loss values, per key, and the first iteration that had one.

    python tools/soak.py configs/retinanet_mwnet.py --iters 2000 --out soak_mwnet.json
    python tools/soak.py configs/retinanet_ghm.py --iters 300 --amp   # bf16 autocast on CPU

Validation and checkpoints are off unless ``--keep-val`` / ``--keep-checkpoints``; dataloaders
run in this process (``--workers 0``) so that the RSS is the training's. Not part of the test
suite (minutes to hours on a CPU).
"""
import argparse
import json
import math
import os
import sys
import time
from typing import Dict, List, Optional

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_REPO, 'mmreweight', '__init__.py')):
    sys.path.insert(0, _REPO)

from mmengine.config import DictAction  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

import mmreweight  # noqa: E402,F401  (registers components, installs safe checkpoint loading)
from mmreweight.engine.runner_config import build_runner, load_run_config  # noqa: E402


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (0 if it is gone)."""
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def child_pids(pid: int) -> List[int]:
    """Direct children of ``pid`` (dataloader workers), from /proc/<pid>/task/*/children."""
    pids = []
    try:
        for task in os.listdir(f'/proc/{pid}/task'):
            with open(f'/proc/{pid}/task/{task}/children') as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def tree_rss_kib(pid: Optional[int] = None) -> Dict[str, int]:
    pid = os.getpid() if pid is None else pid
    children = child_pids(pid)
    own = rss_kib(pid)
    return dict(main=own, children=sum(rss_kib(c) for c in children), workers=len(children))


def linear_slope(xs: List[float], ys: List[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two points)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def _scalar(value) -> float:
    return float(value.detach()) if hasattr(value, 'detach') else float(value)


class SoakMonitor(Hook):
    """Samples RSS every ``every`` iterations and counts non-finite losses every iteration."""

    priority = 'LOWEST'

    def __init__(self, every: int = 50, on_sample=None):
        self.every = every
        self.on_sample = on_sample  # called after each sample (to write partial results)
        self.samples: List[dict] = []
        self.nonfinite: Dict[str, int] = {}
        self.first_nonfinite: Optional[int] = None
        self.iters_done = 0
        self._t0 = time.perf_counter()

    def _sample(self, iteration: int, losses: Dict[str, float]) -> None:
        rss = tree_rss_kib()
        self.samples.append(dict(iter=iteration, time_s=round(time.perf_counter() - self._t0, 2),
                                 rss_mib=round((rss['main'] + rss['children']) / 1024, 2),
                                 rss_main_mib=round(rss['main'] / 1024, 2),
                                 workers=rss['workers'], losses=losses))
        if self.on_sample is not None:
            self.on_sample()

    def before_train(self, runner) -> None:
        self._t0 = time.perf_counter()
        self._sample(runner.iter, {})

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        iteration = runner.iter + 1
        self.iters_done += 1
        values = {k: _scalar(v) for k, v in (outputs or {}).items()}
        # the weighters' scalars, as the hook logged them this iteration (log10 of a zero
        # hypergradient is -inf by design: only NaN counts for those)
        for key, buf in runner.message_hub.log_scalars.items():
            if key.startswith('train/meta_') or key.startswith('train/mentornet_'):
                values[key] = float(buf.current())
        for key, value in values.items():
            bad = math.isnan(value) if 'log10' in key else not math.isfinite(value)
            if bad:
                self.nonfinite[key] = self.nonfinite.get(key, 0) + 1
                if self.first_nonfinite is None:
                    self.first_nonfinite = iteration
        if iteration % self.every == 0 or iteration == runner.max_iters:
            self._sample(iteration, {k: round(v, 6) for k, v in values.items()})

    def summary(self) -> dict:
        s = self.samples
        iters = [x['iter'] for x in s]
        rss = [x['rss_mib'] for x in s]
        half = s[len(s) // 2:]
        timed = [x for x in s if x['iter'] > 0]
        return dict(
            iterations=self.iters_done,
            rss_start_mib=rss[0] if rss else None,
            rss_end_mib=rss[-1] if rss else None,
            rss_max_mib=max(rss) if rss else None,
            rss_slope_mib_per_1000_iters_second_half=round(
                1000 * linear_slope([x['iter'] for x in half], [x['rss_mib'] for x in half]), 3),
            rss_slope_mib_per_1000_iters_all=round(1000 * linear_slope(iters, rss), 3),
            nonfinite_count=sum(self.nonfinite.values()),
            nonfinite_by_key=dict(self.nonfinite),
            first_nonfinite_iter=self.first_nonfinite,
            seconds_per_iter=round(timed[-1]['time_s'] / timed[-1]['iter'], 3) if timed else None)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Soak-train a config; watch RSS and losses')
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=2000)
    parser.add_argument('--every', type=int, default=50, help='RSS sample interval (iterations)')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast on CPU, as train.py')
    parser.add_argument('--workers', type=int, default=0, help='dataloader workers (0: in this '
                        'process, so that its RSS is the whole training)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--out', default=None, help='JSON file (default <work-dir>/soak.json)')
    parser.add_argument('--keep-val', action='store_true', help='keep the validation loop')
    parser.add_argument('--keep-checkpoints', action='store_true',
                        help="keep the config's CheckpointHook")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (applied last)')
    return parser.parse_args(argv)


def soak_config(args):
    name = os.path.splitext(os.path.basename(args.config))[0]
    work_dir = args.work_dir or os.path.join('work_dirs', 'soak', name + ('_amp' if args.amp
                                                                          else ''))
    cfg = load_run_config(args.config, 'none', None, work_dir)
    cfg.train_cfg.max_iters = args.iters
    cfg.train_cfg.val_interval = args.iters if args.keep_val else args.iters + 1
    if not args.keep_val:
        for split in ('val', 'test'):
            cfg[f'{split}_cfg'] = cfg[f'{split}_dataloader'] = cfg[f'{split}_evaluator'] = None
    if not args.keep_checkpoints:
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1, save_last=False)
    # a soak counts non-finite losses over the whole run instead of stopping at the first
    cfg.default_hooks.pop('non_finite', None)
    loaders = [cfg.train_dataloader] + [h['clean_dataloader'] for h in cfg.get('custom_hooks', [])
                                        if isinstance(h.get('clean_dataloader'), dict)]
    for loader in loaders:
        loader['num_workers'] = args.workers
        loader['persistent_workers'] = args.workers > 0
    if args.amp:
        from mmreweight.engine.amp import enable_amp
        enable_amp(cfg)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def run(args, extra_hooks=()) -> dict:
    """Soak-train as ``args`` say (with ``extra_hooks`` registered too); returns the result."""
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    cfg = soak_config(args)
    out = args.out or os.path.join(cfg.work_dir, 'soak.json')
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    state = dict(error=None, finished=False)

    def write() -> dict:
        # rewritten at every sample, so an interrupted soak leaves what it measured
        result = dict(config=args.config, iters=args.iters, amp=args.amp,
                      optim_wrapper=cfg.optim_wrapper.get('type'), **state,
                      summary=monitor.summary(), samples=monitor.samples)
        with open(out, 'w') as f:
            json.dump(result, f, indent=1)
        return result

    runner = build_runner(cfg)
    monitor = SoakMonitor(args.every, on_sample=write)
    runner.register_hook(monitor)
    for hook in extra_hooks:
        runner.register_hook(hook)
    try:
        runner.train()
        state['finished'] = True
    except BaseException as err:  # report what was measured up to the failure, then re-raise
        state['error'] = f'{type(err).__name__}: {err}'
        raise
    finally:
        result = write()
        s = result['summary']
        print(f'soak {args.config} ({"bf16 autocast" if args.amp else "fp32"}): '
              f'{s["iterations"]} iterations, {s["seconds_per_iter"]} s/iter; RSS start '
              f'{s["rss_start_mib"]} MiB, end {s["rss_end_mib"]} MiB, max {s["rss_max_mib"]} MiB, '
              f'slope {s["rss_slope_mib_per_1000_iters_second_half"]} MiB/1000 iters (second '
              f'half; {s["rss_slope_mib_per_1000_iters_all"]} over all); non-finite values: '
              f'{s["nonfinite_count"]} {s["nonfinite_by_key"] or ""}'
              + (f' first at iteration {s["first_nonfinite_iter"]}'
                 if s['first_nonfinite_iter'] else '') + f'; JSON: {out}')
    return result


def main(argv=None):
    run(parse_args(argv))


if __name__ == '__main__':
    main()
