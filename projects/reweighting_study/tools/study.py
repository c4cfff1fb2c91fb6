"""Run the reweighting study: method x condition x source x seed on the embedded
benchmark, one result.json per run, resumable.

    nice -n 10 python tools/study.py --study-dir work_dirs/study --jobs 2
    python tools/study.py --study-dir work_dirs/study --dry-run           # the plan, what is done
    python tools/study.py --only method=focal,method=ghm,condition=clean --seeds 1 --iters 600

Each run trains with tools/train.py (its method's config + --cfg-options for the condition's
benchmark, the seed and the study's schedule; val every iters/val_evals iterations, best
checkpoint by val COCO mAP), evaluates the best and the last checkpoints on the test split with
tools/test.py, dumps per-anchor diagnostics with tools/diagnose.py and writes
<study-dir>/<run_id>/result.json. Runs with a result.json are skipped. MentorNet-DD runs first
fit their mentor (tools/train_mentornet_dd.py) from the focal run of the same condition, source
and seed, which is added to the plan when missing. Every job is one process on one core
(OMP_NUM_THREADS=1); --jobs N runs N at once. Report: tools/study_report.py <study-dir>.
"""
import argparse
import os
import sys

# The checkout's mmreweight and this project's reweighting_study, not installed copies.
_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REPO = os.path.dirname(os.path.dirname(_PROJECT))
sys.path[:0] = [_REPO, _PROJECT]

from mmengine.config import DictAction  # noqa: E402

from reweighting_study import plan  # noqa: E402
from reweighting_study.execute import StudyContext, execute_study  # noqa: E402

#: the default schedule: 3000 iterations of batch 8 (12 epochs of the 2000-image train split), where
#: focal loss converges on clean digits (docs/study/probe); measured cost in docs/study/README.md
DEFAULT_ITERS = 3000


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--study-dir', default='work_dirs/study')
    p.add_argument('--methods', nargs='+', default=list(plan.STUDY_METHODS), choices=plan.METHODS,
                   help=f'default: all but the variants {plan.VARIANTS}')
    p.add_argument('--conditions', nargs='+', default=list(plan.CONDITIONS),
                   choices=list(plan.CONDITIONS))
    p.add_argument('--sources', nargs='+', default=list(plan.SOURCES), choices=plan.SOURCES)
    p.add_argument('--seeds', type=int, default=plan.DEFAULT_NUM_SEEDS,
                   help='number of seeds (0 .. N-1); each sets the benchmark and training seed')
    p.add_argument('--only', action='append', default=[],
                   help="keep runs matching key=value[,key=value...] (keys method, condition, "
                        "source, seed; a key given twice or 'a|b' ORs values); repeat --only "
                        "for a union")
    p.add_argument('--iters', type=int, default=DEFAULT_ITERS, help='training iterations per run')
    p.add_argument('--val-evals', type=int, default=4, help='validations per run')
    p.add_argument('--jobs', type=int, default=1, help='runs at once, one core each')
    p.add_argument('--benchmark', nargs='+', action=DictAction, default={},
                   help='extra benchmark parameters for every run, e.g. train_images=200')
    p.add_argument('--diag-batches', type=int, default=4,
                   help='training batches dumped per run by tools/diagnose.py (0: none)')
    p.add_argument('--mentor-steps', type=int, default=3000,
                   help="MentorNet-DD mentor fit steps (tools/train_mentornet_dd.py --steps)")
    p.add_argument('--dry-run', action='store_true', help='print the plan and exit')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = plan.StudySettings(iters=args.iters, val_evals=args.val_evals,
                                  benchmark_overrides=dict(args.benchmark),
                                  diag_batches=args.diag_batches, mentor_steps=args.mentor_steps)
    runs = plan.select(plan.grid(args.methods, args.conditions, args.sources,
                                 range(args.seeds)), args.only)
    todo = plan.pending(args.study_dir, runs)
    print(f'{len(runs)} runs planned, {len(runs) - len(todo)} already done, {len(todo)} to run '
          f'({args.iters} iterations each, {args.jobs} job(s))')
    if args.dry_run:
        for run in runs:
            print(f'  {"done" if run not in todo else "todo"}  {run.run_id}')
        return 0
    plan.check_study_settings(args.study_dir, settings)
    ctx = StudyContext(study_dir=args.study_dir, repo=_REPO, settings=settings)
    status = execute_study(runs, ctx, args.jobs)
    failed = sorted(r.run_id for r, s in status.items() if s in ('failed', 'blocked'))
    counts = {s: sum(1 for v in status.values() if v == s) for s in set(status.values())}
    print(f'finished: {counts}' + (f'; not done: {", ".join(failed)}' if failed else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
