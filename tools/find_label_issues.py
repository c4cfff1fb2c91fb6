"""Find mislabelled training boxes with a trained detector
(:mod:`mmreweight.analysis.label_issues`).

    python tools/find_label_issues.py configs/retinanet_focal.py work_dirs/focal/iter_1500.pth \\
        --out label_issues/ --cfg-options train_dataloader.dataset.benchmark.noise_type=uniform \\
        train_dataloader.dataset.benchmark.noise_rate=0.4

Scores every training annotation (--score margin, the default: how far the detector's mean sigmoid
probability of another class over the annotation's positive anchors exceeds its given label's;
self_confidence: 1 - the given label's; neighbour_margin: the same margin over the given labels
of the --neighbours training annotations nearest in those probabilities; clean_neighbour_margin:
over the labels of the nearest clean-subset annotations), calibrates the flagging
threshold on a clean subset (the MetaReweightHook's clean_dataloader, else --clean-ann-file, else
the embedded benchmark's meta split; --clean-ann-file wins when given; --calibration: at a set
share of its annotations, or from the training scores' mixture) and writes to --out:
``label_issues.json`` (threshold, calibration, one record per training annotation, ranking
metrics where the annotations carry a ``noisy`` flag), ``cleaned_train.json`` (flagged
annotations dropped or relabelled) and ``gallery.png`` (the top-k flagged boxes; needs
matplotlib, skipped without it).
"""
import argparse
import json
import logging
import math
import os
import sys

# Run from a checkout, use the checkout's mmreweight (not an older installed copy).
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_REPO, 'mmreweight', '__init__.py')):
    sys.path.insert(0, _REPO)

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmreweight.analysis import label_issues as li  # noqa: E402
from mmreweight.analysis.diagnostics import AnchorDiagnostics  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Find mislabelled training boxes')
    p.add_argument('config')
    p.add_argument('checkpoint', help="checkpoint file, or 'init' for a freshly initialised model")
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--action', choices=li.ACTIONS, default='drop',
                   help='what cleaned_train.json does to a flagged annotation')
    p.add_argument('--score', choices=li.SCORES, default=li.SCORES[0],
                   help='the per-annotation score (mmreweight.analysis.label_issues)')
    p.add_argument('--neighbours', type=int, default=li.DEFAULT_NEIGHBOURS,
                   help='neighbours asked by the neighbour scores')
    p.add_argument('--calibration', choices=li.CALIBRATIONS, default='fpr',
                   help="how the clean subset sets the threshold: 'fpr' flags about "
                        "--target-fpr of the correct labels; 'mixture' flags where a label is "
                        'estimated more likely wrong than right, nothing on clean data')
    p.add_argument('--target-fpr', type=float, default=0.05,
                   help='share of the clean subset\'s annotations the threshold may flag '
                        '(--calibration fpr)')
    p.add_argument('--top-k', type=int, default=24, help='flagged boxes drawn in gallery.png')
    p.add_argument('--clean-ann-file',
                   help='COCO json of annotations known to be correct, to calibrate on '
                        '(default: the config\'s clean subset)')
    p.add_argument('--clean-img-dir', help='folder of --clean-ann-file\'s images (default: the '
                                           'training images\' folder)')
    p.add_argument('--seed', type=int, default=None,
                   help="'init' weights (default: the config's seed)")
    p.add_argument('--device', default='cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def _log(msg: str) -> None:
    print_log(msg, logger='current', level=logging.INFO)


def _gallery(path, recs, coco, img_dir, top_k):
    try:
        from mmreweight.analysis import plots
    except ImportError as err:
        _log(f'gallery.png skipped: matplotlib is not installed ({err})')
        return None
    import mmcv
    files = {img['id']: img['file_name'] for img in coco['images']}
    flagged = sorted((r for r in recs if r['flagged']), key=lambda r: -r['score'])[:top_k]
    crops = [(mmcv.imread(os.path.join(img_dir, files[r['image_id']]), channel_order='rgb'),
              r['bbox'], f"{r['given_name']} \u2192 {r['suggested_name']} ({r['score']:.2f})")
             for r in flagged]
    return plots.label_issue_gallery(crops, path)


def main(argv=None):
    args = parse_args(argv)
    if args.checkpoint != 'init' and not os.path.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint} does not exist; give a trained '
                         "checkpoint file (or 'init' for an untrained model)")
    if args.neighbours < 1:
        raise SystemExit(f'--neighbours must be at least 1, got {args.neighbours}')
    if not 0.0 <= args.target_fpr < 1.0:
        raise SystemExit(f'--target-fpr must lie in [0, 1), got {args.target_fpr}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if not cfg.get('train_dataloader') or not cfg.train_dataloader.get('dataset'):
        raise SystemExit(f'{args.config} has no train_dataloader.dataset: the finder scores '
                         'the training set; use a training config')
    seed = args.seed if args.seed is not None else int(cfg.get('randomness', {}).get('seed', 0))
    diag = AnchorDiagnostics(cfg, args.checkpoint, seed=seed, device=args.device,
                             with_weighter=False)
    diag.model.eval()  # running BN statistics: each image scored on its own
    with DefaultScope.overwrite_default_scope(diag.scope):
        train_loader = Runner.build_dataloader(li.sequential_loader_cfg(cfg.train_dataloader),
                                               seed=seed)
    dataset = train_loader.dataset
    if not hasattr(dataset, 'cat_ids') or not getattr(dataset, 'ann_file', None):
        raise SystemExit(f'the training set of {args.config} ({type(dataset).__name__}) is not '
                         'a COCO-style dataset with an ann_file; the finder needs one')
    coco = li.load_coco(dataset.ann_file)
    classes = list(dataset.metainfo['classes'])
    cat_ids = list(dataset.cat_ids)
    img_dir = dataset.data_prefix.get('img', '')

    _log(f'scoring the training set ({len(dataset)} images)')
    with DefaultScope.overwrite_default_scope(diag.scope):
        scored = li.score_dataset(diag.model, train_loader, coco, log=_log,
                                  score=args.score)

    clean_cfg, calibration = li.clean_subset_loader_cfg(
        cfg, args.clean_ann_file, args.clean_img_dir or (img_dir if args.clean_ann_file else None),
        classes)
    with DefaultScope.overwrite_default_scope(diag.scope):
        clean_loader = Runner.build_dataloader(clean_cfg, seed=seed)
    clean_coco_dict = li.load_coco(clean_loader.dataset.ann_file)
    _log(f'scoring the clean subset ({calibration["source"]}, {len(clean_loader.dataset)} images)')
    with DefaultScope.overwrite_default_scope(diag.scope):
        clean_scored = li.score_dataset(diag.model, clean_loader, clean_coco_dict, log=_log,
                                        score=args.score)
    scored, clean_scored = li.with_set_scores(scored, clean_scored, args.score, args.neighbours)
    clean_scores = [s['score'] for s in clean_scored.values()]
    calibrated = li.flag_threshold([s['score'] for s in scored.values()], clean_scores,
                                   args.calibration, args.target_fpr)
    threshold = calibrated.pop('threshold')
    calibration.update(
        ann_file=os.path.abspath(clean_loader.dataset.ann_file),
        clean_annotations=len(clean_scores),
        clean_annotations_scored=sum(not math.isnan(s) for s in clean_scores), **calibrated)

    noisy_field = any('noisy' in a for a in coco['annotations'])
    recs = li.issue_records(coco, scored, cat_ids, threshold, classes)
    result = dict(config=os.path.abspath(args.config), checkpoint=args.checkpoint,
                  train_ann_file=os.path.abspath(dataset.ann_file), score=args.score,
                  **({'neighbours': args.neighbours} if args.score not in li.ANNOTATION_SCORES
                     else {}),
                  threshold=threshold,
                  calibration=calibration, action=args.action,
                  annotations=len(recs), scored=sum(r['scored'] for r in recs),
                  no_anchor=sum(r['scored'] and r['score'] is None for r in recs),
                  flagged=sum(r['flagged'] for r in recs))
    if noisy_field:
        result['metrics'] = li.noise_metrics(scored, coco, cat_ids, threshold)
    result['issues'] = recs

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'label_issues.json'), 'w') as f:
        json.dump(result, f, indent=1, allow_nan=True)
    cleaned = li.clean_coco(coco, [dict(r, suggested_category_id=r['suggested_label'])
                                   for r in recs], threshold, args.action)
    with open(os.path.join(args.out, 'cleaned_train.json'), 'w') as f:
        json.dump(cleaned, f)
    _gallery(os.path.join(args.out, 'gallery.png'), recs, coco, img_dir, args.top_k)
    print(json.dumps({k: v for k, v in result.items() if k != 'issues'}, indent=1))
    return result


if __name__ == '__main__':
    main()
