"""The parallel scheduler (fake runs: nothing trains) and the per-run result helpers."""
import math
import threading
import time

import pytest

from reweighting_study import plan
from reweighting_study.execute import schedule, train_seconds_per_iter
from reweighting_study.plan import Run
from reweighting_study.results import (best_checkpoint_iter, checkpoint_metrics, rarest_classes,
                                      train_scalars, val_curve)

FOCAL, DD = Run('focal', 'clean', 'mnist', 0), Run('mentornet_dd', 'clean', 'mnist', 0)
GHM, L2RW = Run('ghm', 'clean', 'mnist', 0), Run('l2rw', 'clean', 'mnist', 0)


def _fake(fail=(), delay=0.02):
    events, lock = [], threading.Lock()

    def execute(run):
        with lock:
            events.append(('start', run))
        time.sleep(delay if run.method != 'focal' else 3 * delay)
        with lock:
            events.append(('end', run))
        if run in fail:
            raise RuntimeError('boom')
        return dict(wall_s=1, cpu_s=1, best=dict(mAP=0.5), last=dict(mAP=0.4))

    return execute, events


def test_dependants_start_after_their_dependency_and_jobs_run_in_parallel():
    execute, events = _fake()
    runs = plan.with_dependencies([DD, GHM, L2RW])
    status = schedule(runs, execute, jobs=2, done=lambda r: False, log=lambda m: None)
    assert status == {FOCAL: 'done', DD: 'done', GHM: 'done', L2RW: 'done'}
    assert events.index(('end', FOCAL)) < events.index(('start', DD))
    # focal is slow: the second job takes GHM and L2RW meanwhile
    assert events.index(('start', GHM)) < events.index(('end', FOCAL))
    running = peak = 0
    for kind, _ in events:
        running += 1 if kind == 'start' else -1
        peak = max(peak, running)
    assert peak == 2


def test_a_failed_dependency_blocks_its_dependants_only():
    execute, events = _fake(fail={FOCAL})
    status = schedule(plan.with_dependencies([DD, GHM]), execute, jobs=1,
                      done=lambda r: False, log=lambda m: None)
    assert status == {FOCAL: 'failed', DD: 'blocked', GHM: 'done'}
    assert ('start', DD) not in events


def test_done_runs_are_skipped_and_satisfy_dependencies():
    execute, events = _fake()
    status = schedule(plan.with_dependencies([DD]), execute, jobs=2,
                      done=lambda r: r == FOCAL, log=lambda m: None)
    assert status == {FOCAL: 'skipped', DD: 'done'}
    assert [e for e in events if e[0] == 'start'] == [('start', DD)]


def test_rarest_classes_break_ties_by_class_order():
    counts = {'0': 50, '1': 3, '2': 7, '3': 3, '4': 100}
    assert rarest_classes(counts) == ['1', '3', '2']
    assert rarest_classes(counts, 1) == ['1']


def test_checkpoint_metrics():
    metrics = {'coco/bbox_mAP': 0.5, 'coco/bbox_mAP_50': 0.8, 'coco/bbox_mAP_75': 0.6,
               'coco/a_precision': 0.2, 'coco/b_precision': float('nan'),
               'coco/c_precision': 0.6}
    m = checkpoint_metrics(metrics, ['a', 'b', 'c'], rare=['a', 'b'])
    assert (m['mAP'], m['AP50'], m['AP75'], m['empty']) == (0.5, 0.8, 0.6, False)
    assert m['per_class_AP']['c'] == 0.6 and math.isnan(m['per_class_AP']['b'])
    assert m['rare_AP'] == 0.2  # a class without ground truth does not count
    # no detection at all: CocoMetric returns nothing, COCO scores it 0
    empty = checkpoint_metrics({}, ['a', 'b'], rare=['a'])
    assert empty['empty'] and empty['mAP'] == 0.0 and empty['rare_AP'] == 0.0


def test_best_checkpoint_iter_and_logged_iteration_time(tmp_path):
    assert best_checkpoint_iter('w/best_coco_bbox_mAP_iter_450.pth') == 450
    assert best_checkpoint_iter('w/iter_600.pth') is None
    log = tmp_path / 'train.log'
    log.write_text('\n'.join(
        f'11/25 - mmengine - INFO - Iter(train) [{i * 50:>3}/600]  lr: 1e-2  eta: 0:01:10  '
        f'time: {t}  data_time: 0.0070  loss: 1.7' for i, t in enumerate([0.1, 0.3, 0.2], 1)))
    assert train_seconds_per_iter(str(log)) == 0.2
    assert train_seconds_per_iter(str(tmp_path / 'missing.log')) is None


def test_val_curve_from_the_training_log(tmp_path):
    log = tmp_path / 'train.log'
    log.write_text("""\
INFO - Iter(train) [150/600]  lr: 1e-2  time: 0.1  loss: 1.7
ERROR - coco_metric.py - compute_metrics - 465 - The testing results of the whole dataset is empty.
INFO - Iter(val) [19/19]    coco/0_precision: 0.0  coco/bbox_mAP: 0.0300  coco/bbox_mAP_50: 0.1
INFO - Iter(train) [300/600]  lr: 1e-2  time: 0.1  loss: 1.2
INFO - Iter(val) [19/19]    coco/0_precision: 0.2  coco/bbox_mAP: 0.2500  coco/bbox_mAP_50: 0.5
""")
    # the empty validation counts as 0, not as the stale metrics mmengine repeats after it
    assert val_curve(str(log)) == [(150, 0.0), (300, 0.25)]


def test_train_scalars_from_the_training_log(tmp_path):
    log = tmp_path / 'train.log'
    log.write_text("""\
INFO - Iter(train) [ 50/600]  lr: 2.0000e-02  time: 0.1  loss: 1.7  meta_w_noisy: 0.5948  meta_w_clean: nan
INFO - Iter(val) [19/19]    coco/bbox_mAP: 0.0300  meta_w_noisy: 7.0
INFO - Iter(train) [100/600]  lr: 1e-3  loss: -0.5  meta_w_noisy: 1.25e-01
""")
    curves = train_scalars(str(log), ['meta_w_noisy', 'meta_w_clean', 'lr', 'loss', 'absent'])
    assert curves['meta_w_noisy'] == [(50, 0.5948), (100, 0.125)]  # not the val line's
    assert curves['meta_w_clean'] == []  # nan is skipped
    assert curves['lr'] == [(50, 0.02), (100, 0.001)] and curves['loss'] == [(50, 1.7), (100, -0.5)]
    assert curves['absent'] == []


def test_mentornet_dd_mentor_step_reads_the_focal_runs_kept_checkpoints(tmp_path):
    from reweighting_study.execute import RunExecutor, StepFailed, StudyContext
    ctx = StudyContext(study_dir=str(tmp_path), repo='/repo', settings=plan.StudySettings(600))
    executor = RunExecutor(DD, ctx)
    calls = []
    executor.step = lambda name, cmd: calls.append((name, [str(c) for c in cmd]))
    work = tmp_path / FOCAL.run_id / 'work'
    work.mkdir(parents=True)
    with pytest.raises(StepFailed, match='must finish first'):
        executor.mentor()
    for name in ('iter_600.pth', 'iter_450.pth', 'best_coco_bbox_mAP_iter_600.pth'):
        (work / name).write_bytes(b'')
    assert executor.mentor().endswith('mentor.pth')
    (name, cmd), = calls
    assert name == 'mentor' and cmd[1] == '/repo/tools/train_mentornet_dd.py'
    assert cmd[2] == str(tmp_path / FOCAL.run_id / 'config.py')
    assert cmd[3:5] == [str(work / 'iter_450.pth'), str(work / 'iter_600.pth')]
    assert RunExecutor(FOCAL, ctx).mentor() is None
    # the blind mentor: fitted on uniform noise at the estimated rate, the same checkpoints
    blind = RunExecutor(Run('mentornet_dd_blind', 'clean', 'mnist', 0), ctx)
    blind.step = lambda name, cmd: calls.append((name, [str(c) for c in cmd]))
    blind.mentor()
    name, blind_cmd = calls[-1]
    out = cmd.index('--out') + 1
    assert blind_cmd[out].endswith('mentornet_dd_blind-s0/mentor.pth')
    best = str(work / 'best_coco_bbox_mAP_iter_600.pth')  # the rate also estimated from it
    assert blind_cmd[:out] + blind_cmd[out + 1:] == (
        cmd[:out] + cmd[out + 1:] + ['--noise-type', 'uniform', '--noise-rate', 'auto',
                                     '--estimate-from', best])


def test_a_retrain_takes_its_finders_work_dir_once_that_run_is_done(tmp_path):
    from reweighting_study.execute import RunExecutor, StepFailed, StudyContext
    ctx = StudyContext(study_dir=str(tmp_path), repo='/repo', settings=plan.StudySettings(600))
    retrain = Run('label_issues_retrain', 'uniform40', 'mnist', 1)
    (finder, ) = retrain.dependencies
    with pytest.raises(StepFailed, match='must finish first'):
        RunExecutor(retrain, ctx).flags_from()
    result = tmp_path / finder.run_id / 'result.json'
    result.parent.mkdir(parents=True)
    result.write_text('{}')
    assert RunExecutor(retrain, ctx).flags_from() == str(tmp_path / finder.run_id / 'work')
    assert RunExecutor(finder, ctx).flags_from() is None


def test_an_interrupted_training_resumes_from_its_last_checkpoint(tmp_path):
    from reweighting_study.execute import RunExecutor, StudyContext
    python = '/usr/bin/true'  # each "training" exits at once, successfully
    ctx = StudyContext(study_dir=str(tmp_path), repo=str(tmp_path),
                       settings=plan.StudySettings(600), python=python)
    executor = RunExecutor(FOCAL, ctx)
    work = tmp_path / FOCAL.run_id / 'work'
    work.mkdir(parents=True)
    (work / 'stale.log').write_text('')  # interrupted before any checkpoint: starts again
    executor.train(['a=1'])
    log = tmp_path / FOCAL.run_id / 'logs' / 'train.log'
    first = log.read_text()
    assert '--resume' not in first and not (work / 'stale.log').exists()
    assert 'segments' not in executor.timings['train']
    wall = executor.timings['train']['wall_s']
    work.mkdir(parents=True, exist_ok=True)
    (work / 'last_checkpoint').write_text(str(work / 'iter_300.pth'))
    executor.train(['a=1'])
    second = log.read_text()
    assert second.startswith(first) and '--resume' in second[len(first):]  # appended
    assert executor.timings['train']['segments'] == 2
    assert executor.timings['train']['wall_s'] >= wall
    (work / 'iter_600.pth').write_text('')
    executor.step = None  # a finished training is not run again
    executor.train(['a=1'])
