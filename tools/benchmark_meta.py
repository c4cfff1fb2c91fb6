"""Cost of meta-reweighting per training iteration, side by side on one RetinaNet and one batch.

Methods (every meta method runs its meta step every iteration):

* ``plain``            RetinaHead's loss, forward + backward + SGD step;
* ``l2rw/<theta>``     mmreweight's L2RW (clean gradient + forward-mode alignments), with
  ``--l2rw-normalise`` (default ``'foreground'``, as ``configs/retinanet_l2rw.py``);
* ``mwnet/<theta>``    mmreweight's Meta-Weight-Net (look-ahead, alignments, VNet VJP and step), with
  ``--mwnet-normalise`` (default ``'foreground'``, as ``configs/retinanet_mwnet.py``);
* ``ref-l2rw/<theta>``, ``ref-mwnet/<theta>``: the textbook create_graph implementations
  (:mod:`mmreweight.testing.meta_reference`: functional look-ahead of the whole detector with
  ``create_graph=True``, double backward), followed by the same real step.

Time: wall-clock per iteration, median over ``--iters`` rounds; the methods are interleaved round by
round so that load from other processes hits them alike. Memory, two measures:

* ``peak tensors``: the peak of live tensor bytes during one iteration above the bytes live at its
  start, from ``torch.profiler(profile_memory=True)`` (allocations and frees in time order;
  temporaries allocated and freed inside one op are not seen);
* ``RSS growth`` (``--rss``): a fresh process per method; after model set-up the peak-RSS mark is
  reset (``/proc/self/clear_refs``), then peak RSS over 3 iterations minus RSS before them
  (includes the allocator's caching and one-off allocations such as the first iteration's).

Every timed iteration starts from the same parameters and optimizer state (restored untimed):
training on one batch over and over drifts each method's model elsewhere, and a drifted model can
run several times slower (denormal floats), which would measure the drift, not the method.

The clean batch is as large as the training batch and already preprocessed (data loading is not
timed, for any method). Model: ``configs/retinanet_focal.py``'s model unless ``--config``.

    python tools/benchmark_meta.py --batch 8 --size 128 --iters 7 --rss
"""
import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import mmreweight  # noqa: E402,F401
from mmreweight.testing.meta_reference import (reference_l2rw_weights,  # noqa: E402
                                              reference_mwnet_hypergrad)
from mmreweight.testing.tiny_retinanet import synthetic_batch  # noqa: E402
from mmreweight.weighting import L2RWWeighter, MetaWeightNetWeighter  # noqa: E402
from mmreweight.weighting.base import AnchorWeighter  # noqa: E402

DEFAULT_METHODS = ['plain', 'l2rw/cls_out', 'mwnet/cls_out', 'l2rw/head', 'mwnet/head',
                   'l2rw/all', 'mwnet/all', 'ref-l2rw/cls_out', 'ref-mwnet/cls_out',
                   'ref-l2rw/all', 'ref-mwnet/all']
LR = 0.01


def build_model(config, seed=0):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmreweight.registry import MODELS
    cfg = Config.fromfile(config).model
    cfg.bbox_head.type = 'mmreweight.ReweightRetinaHead'
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmreweight'):
        model = MODELS.build(cfg)
    return model.train(), cfg.bbox_head.num_classes


class Given(AnchorWeighter):
    """Weights computed outside the loss (the reference implementations)."""

    def __init__(self):
        super().__init__()
        self.weights = None

    def forward(self, ctx):
        return self.weights


class Method:
    """One training iteration of a method on a fixed training and clean batch."""

    def __init__(self, name, config, train, clean, l2rw_normalise='foreground',
                 mwnet_normalise='foreground'):
        self.name = name
        self.model, _ = build_model(config)
        self.optim = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=0.9)
        self.train, self.clean = train, clean
        kind, _, self.theta = name.partition('/')
        self.kind = kind
        head = self.model.bbox_head
        if kind == 'l2rw':
            self.weighter = L2RWWeighter(self.theta, l2rw_normalise).bind(self.model, lr=LR)
            self.normalise = l2rw_normalise
        elif kind == 'mwnet':
            self.weighter = MetaWeightNetWeighter(self.theta, normalise=mwnet_normalise).bind(
                self.model, lr=LR)
        elif kind.startswith('ref'):
            self.weighter = Given()
            names = L2RWWeighter(self.theta).bind(self.model).view
            self.names = list(names.names)
            if hasattr(names, 'remove'):
                names.remove()
            if kind == 'ref-mwnet':
                self.mw = MetaWeightNetWeighter(normalise=mwnet_normalise)
            self.normalise = l2rw_normalise
        else:
            self.weighter = None
        head.weighter = self.weighter
        self._initial = copy.deepcopy(self._state())

    def _state(self):
        state = dict(model=self.model.state_dict(), optim=self.optim.state_dict())
        mw = getattr(self, 'mw', self.weighter)
        if hasattr(mw, 'meta_state_dict'):
            state['meta'] = mw.meta_state_dict()
        return state

    def reset(self):
        """Back to the initial parameters (untimed), so that every timed iteration does the same
        computation: training repeatedly on one batch drifts each method's model elsewhere, and
        e.g. denormal floats in a drifted model slow its kernels several-fold."""
        self.model.load_state_dict(self._initial['model'])
        self.optim.load_state_dict(self._initial['optim'])
        if 'meta' in self._initial:
            getattr(self, 'mw', self.weighter).load_meta_state_dict(self._initial['meta'])

    def step(self):
        if self.kind in ('l2rw', 'mwnet'):
            self.weighter.prepare_clean(*self.clean)
        elif self.kind == 'ref-l2rw':
            self.weighter.weights = reference_l2rw_weights(self.model, self.names, LR, self.train,
                                                           self.clean, self.normalise)
        elif self.kind == 'ref-mwnet':
            self.weighter.weights = self._reference_mwnet()
        losses = self.model.loss(*self.train)
        loss = sum(sum(v) if isinstance(v, (list, tuple)) else v
                   for k, v in losses.items() if 'loss' in k)
        self.optim.zero_grad()
        loss.backward()
        self.optim.step()

    def _reference_mwnet(self):
        from mmreweight.testing.meta_reference import functional, per_anchor_losses
        grads = reference_mwnet_hypergrad(self.model, self.mw.vnet, self.names, LR, self.train,
                                          self.clean, self.mw.normalise)
        for p, g in zip(self.mw.vnet.parameters(), grads):
            p.grad = g
        self.mw.optim_wrapper.step()
        self.mw.optim_wrapper.zero_grad()
        with torch.no_grad():  # weights of the updated VNet, as the real step uses
            losses, targets = functional(self.model, dict(self.model.named_parameters()),
                                         per_anchor_losses, *self.train)
            valid = targets.label_weights > 0
            weighted = valid & (targets.labels < self.model.bbox_head.num_classes) \
                if self.mw.normalise == 'foreground' else valid
            raw = self.mw.vnet(losses[weighted])
            weights = valid.to(losses.dtype) if self.mw.normalise == 'foreground' \
                else torch.zeros_like(losses)
            weights[weighted] = raw if self.mw.normalise == 'none' else \
                raw * weighted.sum() / raw.sum()
        return weights


def peak_tensor_bytes(fn):
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events()),
                    key=lambda t: t[0])
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


def rss_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss_bytes():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_growth(args, name):
    """Run ``name`` alone in a fresh process; return its max-RSS growth over 3 iterations."""
    cmd = [sys.executable, __file__, '--rss-child', name, '--batch', str(args.batch), '--size',
           str(args.size), '--threads', str(args.threads), '--config', args.config,
           '--l2rw-normalise', args.l2rw_normalise, '--mwnet-normalise', args.mwnet_normalise]
    out = subprocess.run(cmd + (['--flush-denormal'] if args.flush_denormal else []),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])['rss_growth']


def batches(args, num_classes):
    train = synthetic_batch(args.batch, args.size, num_classes, boxes_per_image=4, seed=1,
                            noisy_fraction=0.3)
    clean = synthetic_batch(args.batch, args.size, num_classes, boxes_per_image=4, seed=2)
    return train, clean


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=os.path.join(os.path.dirname(__file__), '..',
                                                         'configs', 'retinanet_focal.py'))
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--iters', type=int, default=7, help='timed rounds (after 1 warm-up)')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--methods', nargs='+', default=DEFAULT_METHODS)
    parser.add_argument('--l2rw-normalise', default='foreground',
                        choices=['foreground', 'pos_neg', 'mean_one'],
                        help="L2RW's normalisation (default: configs/retinanet_l2rw.py's)")
    parser.add_argument('--mwnet-normalise', default='foreground',
                        choices=['foreground', 'mean_one', 'none'],
                        help="MW-Net's normalisation (default: configs/retinanet_mwnet.py's)")
    parser.add_argument('--rss', action='store_true', help='also measure max-RSS growth')
    parser.add_argument('--flush-denormal', action='store_true',
                        help='flush denormals for every method (mmreweight\'s meta weighters '
                        'always do inside their computations; the references and plain do not)')
    parser.add_argument('--rss-child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.flush_denormal:
        torch.set_flush_denormal(True)

    if args.rss_child:
        model_classes = build_model(args.config)[1]
        train, clean = batches(args, model_classes)
        method = Method(args.rss_child, args.config, train, clean, args.l2rw_normalise,
                        args.mwnet_normalise)
        # reset the peak-RSS mark (VmHWM) to the current RSS, so the peak is the iterations'
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        before = rss_bytes()
        for _ in range(3):
            method.reset()
            method.step()
        print(json.dumps(dict(rss_growth=peak_rss_bytes() - before)))
        return

    num_classes = build_model(args.config)[1]
    train, clean = batches(args, num_classes)
    methods = [Method(name, args.config, train, clean, args.l2rw_normalise, args.mwnet_normalise)
               for name in args.methods]
    for m in methods:  # warm-up
        m.step()
    times = {m.name: [] for m in methods}
    for _ in range(args.iters):
        for m in methods:
            m.reset()
            start = time.perf_counter()
            m.step()
            times[m.name].append(time.perf_counter() - start)
    peaks = {}
    for m in methods:
        m.reset()
        peaks[m.name] = peak_tensor_bytes(m.step)
    rss = {m.name: rss_growth(args, m.name) for m in methods} if args.rss else {}

    base_t = statistics.median(times['plain']) if 'plain' in times else None
    base_m, base_r = peaks.get('plain'), rss.get('plain')
    print(f'# {args.batch} x {args.size}px, {torch.get_num_threads()} thread(s), '
          f'torch {torch.__version__}, median of {args.iters} rounds; ratios vs plain; '
          f'normalise: L2RW {args.l2rw_normalise!r}, MW-Net {args.mwnet_normalise!r}'
          + ('; denormals flushed everywhere' if args.flush_denormal else ''))
    header = '| method | time/iter (ms) | x plain | peak tensors (MiB) | x plain |'
    if rss:
        header += ' RSS growth (MiB) | x plain |'
    print(header)
    print('|' + '---|' * (header.count('|') - 1))
    for m in methods:
        t = statistics.median(times[m.name])
        row = (f'| {m.name} | {1e3 * t:.0f} | {t / base_t:.2f} | {peaks[m.name] / 2**20:.1f} | '
               f'{peaks[m.name] / base_m:.2f} |' if base_t else '')
        if rss:
            row += f' {rss[m.name] / 2**20:.1f} | {rss[m.name] / base_r:.2f} |'
        print(row)


if __name__ == '__main__':
    main()
