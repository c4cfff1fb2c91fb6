"""Our label-issue score against cleanlab's, both on out-of-sample predictions (K-fold), on the
noisy embedded benchmark (:mod:`reweighting_study.finder_comparison`).

    nice -n 10 python projects/reweighting_study/tools/compare_finders.py --out work_dirs/finders \\
        --sources mnist fashion_mnist --conditions uniform40 pairflip40 --seeds 3 --jobs 2

A cell is (source, condition, seed). For each of its ``--folds`` folds of the training images a
focal RetinaNet (configs/retinanet_focal.py, the study's schedule rescaled to ``--iters``) is
trained on the other folds with tools/train.py; on the held-out fold it scores every annotation
(our score) and predicts (cleanlab's swap score). ``<out>/<cell>/comparison.json`` holds both
finders' AUC and precision / recall at the true number of flips. Cells and folds already done are
skipped; ``--jobs N`` runs N cells at once, each in its own single-threaded process.
"""
import argparse
import itertools
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REPO = os.path.dirname(os.path.dirname(_PROJECT))
sys.path[:0] = [_REPO, _PROJECT]

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmreweight.analysis import label_issues as li  # noqa: E402
from mmreweight.analysis.diagnostics import AnchorDiagnostics  # noqa: E402
from mmreweight.registry import DATASETS  # noqa: E402
from reweighting_study import finder_comparison as fc  # noqa: E402
from reweighting_study import plan  # noqa: E402
from reweighting_study.execute import (SINGLE_THREAD_ENV, parse_cfg_options,  # noqa: E402
                                       run_logged)

COMPARISON_FILE = 'comparison.json'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Label-issue finders side by side (K-fold)')
    p.add_argument('--out', required=True)
    p.add_argument('--sources', nargs='+', default=list(plan.SOURCES), choices=plan.SOURCES)
    p.add_argument('--conditions', nargs='+', default=['uniform40', 'pairflip40'],
                   choices=[c for c, v in plan.CONDITIONS.items() if v['noise_rate'] > 0])
    p.add_argument('--seeds', type=int, default=plan.DEFAULT_NUM_SEEDS)
    p.add_argument('--folds', type=int, default=2)
    p.add_argument('--iters', type=int, default=1000, help='training iterations per fold')
    p.add_argument('--jobs', type=int, default=1)
    p.add_argument('--benchmark', nargs='+', action=DictAction, default={},
                   help='extra benchmark parameters (e.g. smaller splits)')
    p.add_argument('--records', help='also copy each cell\'s comparison to RECORDS/<cell>.json '
                                     '(the study report reads projects/reweighting_study/'
                                     'records/finders)')
    p.add_argument('--cell', help='run this one cell (source-condition-sN) in this process')
    return p.parse_args(argv)


def cell_id(source: str, condition: str, seed: int) -> str:
    return f'{source}-{condition}-s{seed}'


def _cell_run(cell: str) -> plan.Run:
    source, condition, seed = cell.rsplit('-', 2)
    return plan.Run('focal', condition, source, int(seed[1:]))


def _fold_configs(cell_dir: str, run: plan.Run, folds: int, iters: int, bench: dict):
    """Each fold's training config (the other folds' images) and its held-out indices."""
    cfg = Config.fromfile(os.path.join(_REPO, plan.METHOD_CONFIGS['focal']))
    opts = plan.run_cfg_options(run, cfg.to_dict(), plan.StudySettings(iters=iters, val_evals=1,
                                                                 benchmark_overrides=bench))
    cfg.merge_from_dict(parse_cfg_options(opts))
    with DefaultScope.overwrite_default_scope('mmreweight'):
        num_images = len(DATASETS.build(cfg.train_dataloader.dataset))
    held_out = fc.fold_indices(num_images, folds, run.seed)
    out = []
    for k, fold in enumerate(held_out):
        fold_cfg = cfg.copy()
        fold_cfg.train_dataloader.dataset.indices = sorted(
            i for j, other in enumerate(held_out) if j != k for i in other)
        path = os.path.join(cell_dir, f'fold{k}', 'config.py')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fold_cfg.dump(path)
        out.append((path, fold))
    return out


def _held_out_loader(cfg, indices, pipeline, seed):
    loader = li.sequential_loader_cfg(cfg.train_dataloader)
    loader['dataset'] = dict(loader['dataset'], indices=list(indices), pipeline=pipeline)
    with DefaultScope.overwrite_default_scope('mmreweight'):
        return Runner.build_dataloader(loader, seed=seed)


def _score_fold(config: str, checkpoint: str, held_out, seed: int):
    """({finder: {annotation id: score}} over the held-out images, the COCO dict)."""
    cfg = Config.fromfile(config)
    diag = AnchorDiagnostics(cfg, checkpoint, seed=seed, with_weighter=False)
    model = diag.model.eval()
    train_loader = _held_out_loader(cfg, held_out, cfg.train_dataloader.dataset.pipeline, seed)
    dataset = train_loader.dataset
    coco = li.load_coco(dataset.ann_file)
    scores = {}
    with DefaultScope.overwrite_default_scope('mmreweight'), torch.no_grad():
        for name, (kind, how) in fc.FINDERS.items():
            if kind == 'ours':
                scored = li.score_dataset(model, train_loader, coco, score=how)
                if how not in li.ANNOTATION_SCORES:  # out-of-sample neighbours: the fold's own
                    scored = li.neighbour_scores(scored)
                scores[name] = {a: r['score'] for a, r in scored.items()}
        ann_ids = li.ann_ids_by_image(dataset, coco)
        image_ids, predictions = [], []
        num_classes = len(dataset.metainfo['classes'])
        for data in _held_out_loader(cfg, held_out, cfg.test_dataloader.dataset.pipeline, seed):
            for sample in model.test_step(data):
                pred = sample.pred_instances
                image_ids.append(sample.metainfo['img_id'])
                predictions.append(fc.cleanlab_prediction(
                    pred.bboxes.numpy(), pred.scores.numpy(), pred.labels.numpy(), num_classes))
    labels = fc.cleanlab_labels([ann_ids[i] for i in image_ids], coco, list(dataset.cat_ids))
    for name, (kind, threshold) in fc.FINDERS.items():
        if kind == 'cleanlab':
            scores[name] = {}
            for img, per_box in zip(image_ids, fc.cleanlab_mislabel_scores(labels, predictions,
                                                                           threshold)):
                scores[name].update(zip(ann_ids[img], (float(s) for s in per_box)))
    return scores, coco


def run_cell(out: str, cell: str, folds: int, iters: int, bench: dict) -> dict:
    """Train the cell's folds (skipping those done), score the held-out folds, write and return
    the comparison."""
    cell_dir = os.path.join(out, cell)
    path = os.path.join(cell_dir, COMPARISON_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            done = json.load(f)
        asked = dict(folds=folds, iters=iters, benchmark_overrides=bench)
        if {k: done.get(k) for k in asked} != asked:
            raise SystemExit(f'{path} was made with {({k: done.get(k) for k in asked})}, not '
                             f'{asked}; use another --out')
        return done
    run = _cell_run(cell)
    start = time.monotonic()
    scores, coco = {name: {} for name in fc.FINDERS}, None
    for k, (config, held_out) in enumerate(_fold_configs(cell_dir, run, folds, iters, bench)):
        work = os.path.join(os.path.dirname(config), 'work')
        ckpt = os.path.join(work, f'iter_{iters}.pth')
        if not os.path.isfile(ckpt):
            code, _, _ = run_logged([sys.executable, os.path.join(_REPO, 'tools', 'train.py'),
                                     config, '--work-dir', work],
                                    os.path.join(os.path.dirname(config), 'train.log'),
                                    dict(os.environ, **SINGLE_THREAD_ENV), cwd=_REPO)
            if code != 0:
                raise SystemExit(f'{cell}: fold {k} training failed (exit {code}); see '
                                 f'{os.path.dirname(config)}/train.log')
        fold_scores, coco = _score_fold(config, ckpt, held_out, run.seed)
        for name, by_ann in fold_scores.items():
            scores[name].update(by_ann)
    result = dict(cell=cell, source=run.source, condition=run.condition, seed=run.seed,
                  folds=folds, iters=iters, benchmark_overrides=bench,
                  detector=plan.METHOD_CONFIGS['focal'],
                  metrics=fc.compare(scores, coco),
                  wall_s=round(time.monotonic() - start, 1))
    plan.write_json_atomic(path, result)
    return result


def _summary(result: dict) -> str:
    m = result['metrics']
    return ' '.join(f'{name} AUC {m[name]["auc"]:.3f} P@k {m[name]["precision_at_k"]:.3f}'
                    for name in m)


def main(argv=None):
    args = parse_args(argv)
    if args.cell:
        result = run_cell(args.out, args.cell, args.folds, args.iters, args.benchmark)
        print(json.dumps(result, indent=1))
        return
    cells = [cell_id(s, c, seed) for seed, s, c in
             itertools.product(range(args.seeds), args.sources, args.conditions)]

    def one(cell):
        code, wall, _ = run_logged(
            [sys.executable, os.path.abspath(__file__), '--out', args.out, '--cell', cell,
             '--folds', str(args.folds), '--iters', str(args.iters),
             *(['--benchmark', *(f'{k}={v}' for k, v in args.benchmark.items())]
               if args.benchmark else [])],
            os.path.join(args.out, cell, 'cell.log'), dict(os.environ, **SINGLE_THREAD_ENV))
        if code != 0:
            print(f'{cell}: failed (exit {code}); see {args.out}/{cell}/cell.log', flush=True)
            return
        with open(os.path.join(args.out, cell, COMPARISON_FILE)) as f:
            result = json.load(f)
        print(f'{cell} ({wall / 60:.1f} min): {_summary(result)}', flush=True)
        if args.records:
            plan.write_json_atomic(os.path.join(args.records, f'{cell}.json'), result)

    if args.records:
        os.makedirs(args.records, exist_ok=True)
    with ThreadPoolExecutor(max(args.jobs, 1)) as pool:
        list(pool.map(one, cells))


if __name__ == '__main__':
    main()
