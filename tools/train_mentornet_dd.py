"""Train a data-driven MentorNet (MentorNet-DD) from a detector and the clean (meta) split.

    python tools/train_mentornet_dd.py configs/retinanet_focal.py work_dirs/x/iter_500.pth \\
        --out work_dirs/mentornet_dd/mentor.pth

For every checkpoint given, the detector runs over the clean split; each batch's ground-truth labels
are corrupted (uniform or pair-flip; by default the noise of the config's train benchmark; with
``--noise-rate auto`` uniform noise at the rate estimated from the checkpoints, without using the
benchmark's noise: see :func:`estimated_noise_rate`) and
every anchor's loss under the corrupted labels is recorded with the target 1[label still correct]
(:mod:`mmreweight.weighting.mentornet.dd_data`). A MentorNet is fitted to tell the two apart
(:func:`mmreweight.weighting.mentornet.dd.fit_data_driven`) and written to ``--out``; use it with
``dict(type='mmreweight.MentorNetWeighter', curriculum='dd', mentor_checkpoint=<out>)``.

Several checkpoints (e.g. early, middle and late in training) give the mentor several epochs;
with one, the mentor sees that epoch only and clamps every other to it.
"""
import argparse
import copy
import os
import os.path as osp
import sys

# From a checkout, use the checkout's mmreweight (not an older installed copy), as tools/train.py.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_REPO, 'mmreweight', '__init__.py')):
    sys.path.insert(0, _REPO)

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint

import mmreweight  # noqa: F401  (registers components, installs safe checkpoint loading)
from mmreweight.analysis import label_issues as li
from mmreweight.registry import MODELS
from mmreweight.weighting.mentornet.curricula import progress_to_epoch
from mmreweight.weighting.mentornet.dd import dd_features, fit_data_driven, save_mentor
from mmreweight.weighting.mentornet.dd_data import collect_dd_batch

#: a rise of the fitted v past the training losses larger than this is reported (see mentor_rise)
RISE_WARNING = 0.1
#: the share of the clean subset flagged when the noise rate is estimated (--noise-rate auto)
ESTIMATE_FPR = 0.2
#: the corruption rates a mentor is fitted with: enough corrupted and clean labels to learn from
FIT_RATE_RANGE = (0.05, 0.95)


def rate_or_auto(value: str):
    return value if value == 'auto' else float(value)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train a data-driven MentorNet (MentorNet-DD)')
    p.add_argument('config', help='detector config')
    p.add_argument('checkpoints', nargs='+', help='detector checkpoint(s)')
    p.add_argument('--out', required=True, help='where to write the mentor (.pth)')
    p.add_argument('--progress', type=float, nargs='+',
                   help='training progress in [0, 1] of each checkpoint (default: from its meta)')
    p.add_argument('--dataloader', default=None,
                   help="config key of the clean dataloader (default: 'meta_dataloader' if the "
                        "config has one, else train_dataloader with dataset.split='meta')")
    p.add_argument('--noise-type', choices=['uniform', 'pairflip'], default=None,
                   help="default: the train benchmark's; uniform with --noise-rate auto")
    p.add_argument('--noise-rate', type=rate_or_auto, default=None,
                   help="a rate in (0, 1), or 'auto': the largest of the rates estimated from "
                        "each checkpoint's label-issue scores on the training set and the clean "
                        "split (default: the train benchmark's)")
    p.add_argument('--estimate-from', nargs='+', default=None,
                   help='with --noise-rate auto, further checkpoints to estimate from (e.g. the '
                        'best by val mAP, fitted less to the wrong labels than the last)')
    p.add_argument('--percentile', type=float, default=0.7)
    p.add_argument('--neg-per-image', type=int, default=256)
    p.add_argument('--max-batches', type=int, default=None, help='per checkpoint')
    p.add_argument('--steps', type=int, default=3000, help='mentor optimiser steps')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, as tools/train.py does (key=value ...)')
    return p.parse_args(argv)


def clean_dataloader_cfg(cfg: Config, key=None) -> dict:
    """The clean split's dataloader config, deterministic and without worker persistence."""
    if key is not None or 'meta_dataloader' in cfg:
        loader = copy.deepcopy(cfg[key or 'meta_dataloader'])
    else:
        loader = copy.deepcopy(cfg.train_dataloader)
        if 'split' not in loader['dataset']:
            raise ValueError('cannot derive the clean split from train_dataloader (its dataset '
                             'has no `split`); name a dataloader of clean images with --dataloader')
        loader['dataset']['split'] = 'meta'
    loader.pop('batch_sampler', None)
    loader['sampler'] = dict(type='DefaultSampler', shuffle=False)
    loader['persistent_workers'] = False
    return loader


def noise_settings(cfg: Config, noise_type=None, noise_rate=None):
    """Explicit settings, else the train benchmark's noise, else uniform 0.2."""
    bench = cfg.train_dataloader.get('dataset', {}).get('benchmark', None) or {}
    if noise_type is None:
        noise_type = bench.get('noise_type', 'none')
        noise_type = 'uniform' if noise_type == 'none' else noise_type
    if noise_rate is None:
        noise_rate = float(bench.get('noise_rate', 0.0)) or 0.2
    if not 0.0 < noise_rate < 1.0:
        raise ValueError(f'--noise-rate must be in (0, 1), got {noise_rate}')
    return noise_type, noise_rate


def estimated_noise_rate(model, cfg: Config, clean_loader, seed: int = 0) -> dict:
    """The share of mislabelled training annotations estimated by ``model`` (eval mode) from
    the margin scores of the training set and the clean split
    (:func:`mmreweight.analysis.label_issues.estimate_noise_rate` at ``ESTIMATE_FPR``).

    The scores are in-sample: a detector that has fitted the wrong labels scores them like
    correct ones, and the estimate falls towards 0 (a focal RetinaNet on the benchmark's 40%
    uniform noise: 0.37 after 1,500 iterations, 0.25 at its val peak of a 12,000-iteration run,
    0.06 at 6,000 and 0 at 12,000), so ``--noise-rate auto`` takes the largest estimate over the
    checkpoints it is given."""
    train_loader = Runner.build_dataloader(li.sequential_loader_cfg(cfg.train_dataloader),
                                           seed=seed)
    scores = [[r['score'] for r in li.score_dataset(
        model, loader, li.load_coco(loader.dataset.ann_file)).values()]
        for loader in (train_loader, clean_loader)]
    return li.estimate_noise_rate(*scores, target_fpr=ESTIMATE_FPR)


def checkpoint_progress(cfg: Config, ckpt_meta: dict) -> float:
    """Progress of a checkpoint: iter / max_iters, or epoch / max_epochs."""
    train_cfg = cfg.get('train_cfg', {}) or {}
    if 'max_iters' in train_cfg and 'iter' in ckpt_meta:
        return min(float(ckpt_meta['iter']) / float(train_cfg['max_iters']), 1.0)
    if 'max_epochs' in train_cfg and 'epoch' in ckpt_meta:
        return min(float(ckpt_meta['epoch']) / float(train_cfg['max_epochs']), 1.0)
    raise ValueError('cannot tell the checkpoint\'s training progress from its meta; '
                     'give --progress')


def main(argv=None):
    args = parse_args(argv)
    if args.progress is not None and len(args.progress) != len(args.checkpoints):
        raise ValueError('give one --progress value per checkpoint')
    if args.estimate_from and args.noise_rate != 'auto':
        raise ValueError('--estimate-from names checkpoints to estimate the noise rate from; it '
                         'needs --noise-rate auto')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    estimate = None
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmreweight')):
        loader = Runner.build_dataloader(clean_dataloader_cfg(cfg, args.dataloader),
                                         seed=args.seed)
        if args.noise_rate == 'auto':  # neither the benchmark's rate nor its type
            estimates = []
            for path in dict.fromkeys(args.checkpoints + (args.estimate_from or [])):
                model = MODELS.build(cfg.model)
                load_checkpoint(model, path, map_location='cpu')
                estimates.append(dict(estimated_noise_rate(model.to(args.device).eval(), cfg,
                                                           loader, args.seed),
                                      checkpoint=osp.abspath(path)))
                print(f'{path}: estimated noise rate {estimates[-1]["noise_rate"]:.3f} '
                      f'(training annotations flagged '
                      f'{estimates[-1]["train_flagged_fraction"]:.3f}, clean '
                      f'{estimates[-1]["clean_flagged_fraction"]:.3f})')
            # a detector that has fitted the wrong labels scores them as correct ones: the
            # least fitted checkpoint gives the largest estimate
            estimate = dict(max(estimates, key=lambda e: e['noise_rate']), all=estimates)
            args.noise_rate = min(max(estimate['noise_rate'], FIT_RATE_RANGE[0]),
                                  FIT_RATE_RANGE[1])
            args.noise_type = args.noise_type or 'uniform'
            print(f'fitting with {args.noise_type} noise at {args.noise_rate:.3f}')
        noise_type, noise_rate = noise_settings(cfg, args.noise_type, args.noise_rate)
        records = []
        for k, path in enumerate(args.checkpoints):
            model = MODELS.build(cfg.model)
            ckpt = load_checkpoint(model, path, map_location='cpu')
            progress = (args.progress[k] if args.progress is not None
                        else checkpoint_progress(cfg, ckpt.get('meta', {})))
            epoch = progress_to_epoch(progress)
            model.to(args.device).eval()
            for b, data in enumerate(loader):
                if args.max_batches is not None and b >= args.max_batches:
                    break
                rec = collect_dd_batch(model, data, noise_type, noise_rate, rng,
                                       args.neg_per_image, gen)
                rec['epoch'] = torch.full_like(rec['loss'], epoch, dtype=torch.long)
                records.append(rec)
            print(f'{path}: progress {progress:.3f} (epoch {epoch}), '
                  f'{sum(len(r["loss"]) for r in records)} anchors so far')

    cat = {k: torch.cat([r[k] for r in records]) for k in records[0]}
    feats = dd_features(cat['loss'], cat['is_pos'], cat['epoch'], args.percentile)
    net, metrics = fit_data_driven(feats, cat['clean'].float(), steps=args.steps, seed=args.seed)
    n_pos = int(cat['is_pos'].sum())
    meta = dict(percentile=args.percentile, noise_type=noise_type, noise_rate=noise_rate,
                noise_estimate=estimate,
                config=osp.abspath(args.config),
                checkpoints=[osp.abspath(c) for c in args.checkpoints],
                num_anchors=len(cat['loss']), num_positives=n_pos,
                num_corrupted=int((~cat['clean']).sum()), metrics=metrics)
    save_mentor(args.out, net, 'dd', meta)
    print(f'held-out: accuracy {metrics["accuracy"]:.4f}, AUC {metrics["auc"]:.4f}, '
          f'AUC over positives {metrics["auc_pos"]:.4f}; wrote {args.out}')
    if metrics['rise_pos'] > RISE_WARNING:
        print(f'note: for positives the mentor\'s v rises again by {metrics["rise_pos"]:.2f} up to '
              f'loss {metrics["rise_at_loss"]:.2f} (epoch {metrics["rise_epoch"]:.0f}), past the '
              'losses it was fitted on; MentorNetWeighter(monotone=True) ignores such rises')
    return metrics


if __name__ == '__main__':
    main()
