"""Per-anchor diagnostics of a detector: loss, weight, label, positive and noisy flags.

    python tools/diagnose.py configs/retinanet_l2rw.py work_dirs/l2rw/iter_1500.pth --out diag/
    python tools/diagnose.py configs/retinanet_ghm.py init --out diag_init/   # untrained

Runs ``--batches`` training batches through the detector without updating anything and writes
to ``--out``: ``diagnostics.npz`` (per valid anchor: loss, weight, label, pos, noisy, level, shape
``prior`` and training ``batch``, and for positives the matched annotation, numbered over the
dump, ``gt_index``, and their IoU ``gt_iou``;
every positive and a sample of negatives, ``neg_keep_frac``; GHM gradient-density histograms
``hist_*`` over ``hist_edges``; class-balanced weights or GHM moving averages when the loss has
them), ``summary.json``, ``weight_vs_loss.png`` and ``gradient_density.png``; with
``--clean-batches K`` (L2RW) also ``clean_agreement.json``: how far the weights of one training
batch agree across K clean batches (MW-Net's weights are VNet(loss): without a meta step they do not
depend on the clean batch); with ``--meta-signal K`` (MW-Net) also ``meta_signal.json``: what K meta
steps from the checkpoint's VNet would teach it (:mod:`mmreweight.analysis.meta_signal`); with
``--gradient-share`` also ``gradient_share.json``: how focal loss and the config's classification
loss share their gradient between positives and negatives of each FPN level, called level by level
and over all levels (:mod:`mmreweight.analysis.gradient_share`). What "weight" means for each
method is in :mod:`mmreweight.analysis.diagnostics`.
"""
import argparse
import json
import os
import sys

# Run from a checkout, use the checkout's mmreweight (not an older installed copy).
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_REPO, 'mmreweight', '__init__.py')):
    sys.path.insert(0, _REPO)

import numpy as np  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from mmreweight.losses import GHMR  # noqa: E402
from mmreweight.analysis import plots  # noqa: E402
from mmreweight.analysis.diagnostics import AnchorDiagnostics, summarize  # noqa: E402
from mmreweight.analysis.meta_signal import meta_signal  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Per-anchor loss / weight diagnostics')
    p.add_argument('config')
    p.add_argument('checkpoint', help="checkpoint file, or 'init' for a freshly initialised model")
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--batches', type=int, default=4, help='training batches to run')
    p.add_argument('--max-negatives', type=int, default=20000,
                   help='negatives kept in the dump (all positives are kept)')
    p.add_argument('--seed', type=int, default=None,
                   help="data order and 'init' weights (default: the config's seed)")
    p.add_argument('--name', help='title of the figures (default: the config\'s name)')
    p.add_argument('--clean-batches', type=int, default=0,
                   help='L2RW: also weight the first training batch '
                        'under this many clean batches and write clean_agreement.json (how '
                        'much the weights depend on the clean batch drawn); 0: off')
    p.add_argument('--meta-signal', type=int, default=0,
                   help='MW-Net: also take this many meta steps from the checkpoint\'s VNet (one '
                        'per training batch, each with its own clean batch, the VNet restored '
                        'after each) and write meta_signal.json: how the per-anchor meta '
                        'coefficients go with the loss and the noise flags, and how far the '
                        'hypergradients agree; 0: off')
    p.add_argument('--ghmr-profile', action='store_true',
                   help='also write ghmr_profile.json/.png: how GHM-R bins the box deltas and '
                        'how its gradient compares with L1\'s (always on for a GHM-R config)')
    p.add_argument('--gradient-share', action='store_true',
                   help='also write gradient_share.json: the share of the classification '
                        'gradient on positive and negative targets of each FPN level, for focal '
                        'loss and the config\'s loss, called per level and over all levels')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    seed = args.seed if args.seed is not None else int(cfg.get('randomness', {}).get('seed', 0))
    diag = AnchorDiagnostics(cfg, args.checkpoint, seed=seed)
    dump = diag.run(args.batches, args.max_negatives)
    os.makedirs(args.out, exist_ok=True)
    np.savez_compressed(os.path.join(args.out, 'diagnostics.npz'), method=diag.method, **dump)
    summary = dict(config=os.path.abspath(args.config), checkpoint=args.checkpoint,
                   method=diag.method, batches=args.batches, seed=seed, **summarize(dump))
    if diag.label_issues is not None:  # the flags the batches were given, from the checkpoint
        summary.update(label_issue_flags=len(diag.label_issues.flags),
                       label_issue_relabels=len(diag.label_issues.relabels))
    with open(os.path.join(args.out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)

    name = args.name or os.path.splitext(os.path.basename(args.config))[0]
    fig, (ax, ) = plots.subplots(1, size=(6, 4.5))
    plots.weight_vs_loss(ax, dump, f'{name}: {diag.method} weights, {args.batches} batches')
    ax.legend(fontsize=7, markerscale=3)
    plots.save(fig, os.path.join(args.out, 'weight_vs_loss.png'))
    fig, (ax, ) = plots.subplots(1, size=(6, 4.5))
    plots.gradient_density(ax, [(key, dump[f'hist_{key}']) for key in
                                ('all', 'target1', 'target1_clean', 'target1_noisy')],
                           dump['hist_edges'], f'{name}: gradient density (30 bins)')
    ax.legend(fontsize=7)
    plots.save(fig, os.path.join(args.out, 'gradient_density.png'))
    print(json.dumps(summary, indent=1))
    if args.ghmr_profile or isinstance(diag.head.loss_bbox, GHMR):
        profile = diag.ghmr_profile(args.batches)
        with open(os.path.join(args.out, 'ghmr_profile.json'), 'w') as f:
            json.dump(profile, f, indent=1)
        fig, (ax, ) = plots.subplots(1, size=(6, 4.5))
        plots.ghmr_profile(ax, [(args.checkpoint if args.checkpoint == 'init' else 'checkpoint',
                                 profile)], f'{name}: GHM-R bins (mu={profile["mu"]})')
        plots.save(fig, os.path.join(args.out, 'ghmr_profile.png'))
        print(json.dumps(profile, indent=1))
    if args.gradient_share:
        share = diag.gradient_share(args.batches)
        with open(os.path.join(args.out, 'gradient_share.json'), 'w') as f:
            json.dump(share, f, indent=1)
        print(json.dumps(share, indent=1))
    if args.clean_batches:
        data = next(iter(diag.train_loader()))
        agreement = diag.clean_batch_agreement(data, args.clean_batches)
        np.savez_compressed(os.path.join(args.out, 'clean_agreement.npz'),
                            weights=agreement.pop('weights'), noisy=agreement.pop('noisy'))
        with open(os.path.join(args.out, 'clean_agreement.json'), 'w') as f:
            json.dump(agreement, f, indent=1)
        print(json.dumps(agreement, indent=1))
    if args.meta_signal:
        signal = meta_signal(diag, args.meta_signal)
        with open(os.path.join(args.out, 'meta_signal.json'), 'w') as f:
            json.dump(signal, f, indent=1)
        print(json.dumps({k: v for k, v in signal.items()
                          if k not in ('per_batch', 'hypergrads')}, indent=1))


if __name__ == '__main__':
    main()
