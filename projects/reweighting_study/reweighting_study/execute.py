"""Executing study runs: each step is a subprocess of the project's own tools (train, test,
train_mentornet_dd, diagnose) on one core, with its log, wall and CPU time kept in the run's
folder; a parallel scheduler that respects dependencies.

A run folder ``<study_dir>/<run_id>/`` holds ``config.py`` (the effective config), ``work/``
(mmengine's work dir: checkpoints, val logs), ``logs/<step>.log``, ``test_{best,last}.json``,
``diagnostics*/``, ``timings.json`` and, written last, ``result.json``. Steps whose outputs
exist are not redone, so an interrupted study resumes; an interrupted training resumes from its
last checkpoint (mmengine's exact resume), its log appended to and its time summed over the
segments that finished (``timings.json``: ``segments``; a segment cut short is not counted).
"""
import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .plan import (FLAGS_SOURCE_METHODS, GHMR_METHODS, MENTOR_DD_METHODS, MENTOR_FIT_OPTIONS, Run,
                   StudySettings, is_done, result_path, run_cfg_options, run_dir,
                   write_json_atomic)
from .provenance import machine_info
from .results import best_checkpoint_iter, checkpoint_metrics, rarest_classes, val_curve

#: the environment of every step: one core each, so --jobs N uses N cores
SINGLE_THREAD_ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1',
                         PYTHONUNBUFFERED='1')
_ITER_TIME = re.compile(r'Iter\(train\) \[\s*\d+/\d+\].*?\stime: ([0-9.]+)')


class StepFailed(RuntimeError):
    """A step's process exited with an error; the message names its log."""


@dataclass
class StudyContext:
    study_dir: str
    repo: str
    settings: StudySettings
    python: str = sys.executable
    env: Dict[str, str] = field(default_factory=lambda: dict(os.environ, **SINGLE_THREAD_ENV))
    log: Callable[[str], None] = print


def run_logged(cmd: Sequence[str], log_path: str, env: Dict[str, str],
               cwd: Optional[str] = None, append: bool = False) -> Tuple[int, float, float]:
    """Run ``cmd`` with stdout and stderr into ``log_path`` (after what it holds if
    ``append``); (exit code, wall s, CPU s).

    CPU time comes from the child's own rusage (``os.wait4``), so it is the run's cost even
    when the machine is shared and wall time is not.
    """
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    start = time.monotonic()
    with open(log_path, 'a' if append else 'w') as log:
        log.write('$ ' + ' '.join(cmd) + '\n')
        log.flush()
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - start, usage.ru_utime + usage.ru_stime


def parse_cfg_options(options: Sequence[str]) -> dict:
    """``key=value`` items parsed exactly as the tools' ``--cfg-options`` parse them."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def train_seconds_per_iter(log_path: str) -> Optional[float]:
    """Median of mmengine's logged per-iteration training time (``time: ...``)."""
    try:
        with open(log_path) as f:
            times = [float(m.group(1)) for m in _ITER_TIME.finditer(f.read())]
    except OSError:
        return None
    return statistics.median(times) if times else None


class RunExecutor:
    """Executes one run's steps in order, skipping those already done."""

    def __init__(self, run: Run, ctx: StudyContext) -> None:
        self.run, self.ctx = run, ctx
        self.dir = os.path.abspath(run_dir(ctx.study_dir, run))
        self.work = os.path.join(self.dir, 'work')
        self.timing_file = os.path.join(self.dir, 'timings.json')
        self.timings: Dict[str, Dict[str, float]] = {}
        if os.path.isfile(self.timing_file):
            with open(self.timing_file) as f:
                self.timings = json.load(f)

    # ---------------------------------------------------------------- helpers
    def tool(self, name: str) -> str:
        return os.path.join(self.ctx.repo, 'tools', name)

    def step(self, name: str, cmd: Sequence[str], resumed: bool = False) -> None:
        """Run one step; ``resumed``: it continues an interrupted one, whose log it appends to
        and whose finished segments' time it adds to."""
        log = os.path.join(self.dir, 'logs', f'{name}.log')
        code, wall, cpu = run_logged([str(c) for c in cmd], log, self.ctx.env, cwd=self.ctx.repo,
                                     append=resumed)
        if code != 0:
            raise StepFailed(f'{self.run.run_id}: step {name} failed (exit {code}); see {log}')
        before = self.timings.get(name, {}) if resumed else {}
        self.timings[name] = dict(wall_s=round(before.get('wall_s', 0.0) + wall, 2),
                                  cpu_s=round(before.get('cpu_s', 0.0) + cpu, 2))
        if resumed:
            self.timings[name]['segments'] = before.get('segments', 1) + 1
        write_json_atomic(self.timing_file, self.timings)

    def checkpoint(self, iteration: int) -> str:
        return os.path.join(self.work, f'iter_{iteration}.pth')

    def best_checkpoint(self) -> Optional[str]:
        found = sorted(glob.glob(os.path.join(self.work, 'best_*_iter_*.pth')),
                       key=lambda p: best_checkpoint_iter(p) or -1)
        return found[-1] if found else None

    # ---------------------------------------------------------------- steps
    def mentor(self) -> Optional[str]:
        """MentorNet-DD: fit the mentor on the clean meta split from the regular checkpoints the
        focal run kept (tools/train_mentornet_dd.py): its last one and the one before, which is
        the half-way one or, when a new best val mAP was saved after it, that iteration's (mmengine
        re-saves a regular checkpoint with the best, and keeps two)."""
        if self.run.method not in MENTOR_DD_METHODS:
            return None
        path = os.path.join(self.dir, 'mentor.pth')
        if os.path.isfile(path):
            return path
        (dep, ) = self.run.dependencies
        dep_dir = os.path.abspath(run_dir(self.ctx.study_dir, dep))
        last = os.path.join(dep_dir, 'work', f'iter_{self.ctx.settings.iters}.pth')
        if not os.path.isfile(last):
            raise StepFailed(f'{self.run.run_id}: {last} is missing (the {dep.run_id} run must '
                             'finish first)')
        ckpts = sorted(glob.glob(os.path.join(dep_dir, 'work', 'iter_*.pth')),
                       key=lambda p: int(re.search(r'iter_(\d+)\.pth$', p).group(1)))
        options = list(MENTOR_FIT_OPTIONS.get(self.run.method, ()))
        best = glob.glob(os.path.join(dep_dir, 'work', 'best_*_iter_*.pth'))
        if 'auto' in options and best:  # the rate also from the checkpoint best on val
            options += ['--estimate-from', *best]
        # the focal run's effective config: its benchmark's clean meta split and (unless the
        # method's fit options say otherwise) noise setting
        self.step('mentor', [self.ctx.python, self.tool('train_mentornet_dd.py'),
                             os.path.join(dep_dir, 'config.py'), *ckpts, '--out', path,
                             '--seed', self.run.seed, '--steps', self.ctx.settings.mentor_steps,
                             '--device', 'cpu', *options])
        return path

    def flags_from(self) -> Optional[str]:
        """A retrain: the work dir of its finder's run, which must have finished."""
        if self.run.method not in FLAGS_SOURCE_METHODS:
            return None
        (dep, ) = self.run.dependencies
        dep_dir = os.path.abspath(run_dir(self.ctx.study_dir, dep))
        if not is_done(self.ctx.study_dir, dep):
            raise StepFailed(f'{self.run.run_id}: {dep.run_id} must finish first')
        return os.path.join(dep_dir, 'work')

    def write_config(self, options: List[str]) -> str:
        """The effective config (method config + options), for the record and for the tools
        that take no --cfg-options."""
        from mmengine.config import Config
        cfg = Config.fromfile(os.path.join(self.ctx.repo, self.run.config))
        cfg.merge_from_dict(parse_cfg_options(options))
        path = os.path.join(self.dir, 'config.py')
        cfg.dump(path)
        return path

    def train(self, options: List[str]) -> None:
        if os.path.isfile(self.checkpoint(self.ctx.settings.iters)):
            return
        resume = os.path.isfile(os.path.join(self.work, 'last_checkpoint'))
        if not resume:  # interrupted before its first checkpoint: starts again
            shutil.rmtree(self.work, ignore_errors=True)
        self.step('train', [self.ctx.python, self.tool('train.py'),
                            os.path.join(self.ctx.repo, self.run.config),
                            '--work-dir', self.work, *(['--resume'] if resume else []),
                            '--cfg-options', *options], resumed=resume)

    def test(self, name: str, ckpt: str, options: List[str]) -> dict:
        out = os.path.join(self.dir, f'test_{name}.json')
        if not os.path.isfile(out):
            self.step(f'test_{name}', [self.ctx.python, self.tool('test.py'),
                                       os.path.join(self.ctx.repo, self.run.config),
                                       ckpt, '--work-dir', os.path.join(self.work, f'test_{name}'),
                                       '--metrics-out', out, '--cfg-options', *options])
        with open(out) as f:
            return json.load(f)['metrics']

    def diagnose(self, config: str, ckpt: str, name: str) -> Optional[str]:
        """Per-anchor dumps (tools/diagnose.py); a failure is recorded, not fatal."""
        batches = self.ctx.settings.diag_batches
        out = os.path.join(self.dir, name)
        if batches <= 0:
            return None
        if not os.path.isfile(os.path.join(out, 'diagnostics.npz')):
            try:
                self.step(name, [self.ctx.python, self.tool('diagnose.py'), config, ckpt,
                                 '--out', out, '--batches', batches, '--seed', self.run.seed,
                                 '--name', f'{self.run.run_id} ({os.path.basename(ckpt)})'])
            except StepFailed as err:
                self.ctx.log(f'warning: {err}')
                return f'failed: {err}'
        return os.path.relpath(out, self.dir)

    def label_issues(self) -> Optional[dict]:
        """The LabelIssueHook's summary of its scoring points (None for the other methods)."""
        from mmreweight.engine.label_issue_hook import SUMMARY_FILE
        path = os.path.join(self.work, SUMMARY_FILE)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return json.load(f)

    # ---------------------------------------------------------------- the run
    def __call__(self) -> dict:
        from mmengine.config import Config
        from mmreweight.datasets import benchmark_root, ensure_benchmark, read_class_counts

        os.makedirs(self.dir, exist_ok=True)
        start = time.monotonic()
        settings = self.ctx.settings
        mentor = self.mentor()
        cfg = Config.fromfile(os.path.join(self.ctx.repo, self.run.config))
        options = run_cfg_options(self.run, cfg.to_dict(), settings, mentor, self.flags_from())
        config = self.write_config(options)
        bench = self.run.benchmark(settings.benchmark_overrides)
        info = ensure_benchmark(bench)
        train_counts = read_class_counts(benchmark_root(bench), 'train')
        rare = rarest_classes(train_counts)

        self.train(options)
        last = self.checkpoint(settings.iters)
        best = self.best_checkpoint()
        best_iter = best_checkpoint_iter(best) if best else None
        evaluations = {}
        last_metrics = self.test('last', last, options)
        evaluations['last'] = dict(checkpoint=os.path.relpath(last, self.dir),
                                   iter=settings.iters,
                                   **checkpoint_metrics(last_metrics, info['classes'], rare))
        if best is None or best_iter == settings.iters:
            # no val improvement was saved (no detections yet) or the best is the last
            evaluations['best'] = dict(evaluations['last'], same_as_last=True)
        else:
            best_metrics = self.test('best', best, options)
            evaluations['best'] = dict(checkpoint=os.path.relpath(best, self.dir), iter=best_iter,
                                       same_as_last=False,
                                       **checkpoint_metrics(best_metrics, info['classes'], rare))
        diagnostics = dict(last=self.diagnose(config, last, 'diagnostics'))
        if self.run.method in GHMR_METHODS:  # gradient density and GHM-R bins before training
            diagnostics['init'] = self.diagnose(config, 'init', 'diagnostics_init')

        result = dict(
            run_id=self.run.run_id, method=self.run.method, condition=self.run.condition,
            source=self.run.source, seed=self.run.seed, settings=settings.to_dict(),
            config=self.run.config, effective_config='config.py',
            cfg_options=options, benchmark=dict(bench, name=info['name']),
            classes=list(info['classes']), train_class_counts=train_counts, rare_classes=rare,
            best=evaluations['best'], last=evaluations['last'],
            val_curve=val_curve(os.path.join(self.dir, 'logs', 'train.log')),
            diagnostics=diagnostics,
            label_issues=self.label_issues(),
            timings=self.timings,
            train_s_per_iter=train_seconds_per_iter(os.path.join(self.dir, 'logs', 'train.log')),
            wall_s=round(sum(t['wall_s'] for t in self.timings.values()), 1),
            cpu_s=round(sum(t['cpu_s'] for t in self.timings.values()), 1),
            session_wall_s=round(time.monotonic() - start, 1),
            finished=time.strftime('%Y-%m-%dT%H:%M:%S'),
            machine=machine_info(self.ctx.repo))
        write_json_atomic(result_path(self.ctx.study_dir, self.run), result)
        return result


# ---------------------------------------------------------------------------------- scheduling
def schedule(runs: Sequence[Run], execute: Callable[[Run], dict], jobs: int,
             done: Callable[[Run], bool], log: Callable[[str], None] = print
             ) -> Dict[Run, str]:
    """Execute ``runs`` (already done ones skipped) with up to ``jobs`` at a time; a run starts
    once its dependencies are done, and is skipped if one of them failed.

    Returns run -> ``'done'``, ``'skipped'`` (done before), ``'failed'`` or
    ``'blocked'`` (a dependency failed).
    """
    status: Dict[Run, str] = {r: 'skipped' for r in runs if done(r)}
    queue = [r for r in runs if r not in status]
    total = len(queue)
    finished = 0

    def ready(run: Run) -> Optional[bool]:
        """True: can start; False: wait; None: will never run."""
        for dep in run.dependencies:
            state = status.get(dep)
            if state in ('failed', 'blocked'):
                return None
            if state not in ('done', 'skipped') and not done(dep):
                if dep not in queue and dep not in running.values():
                    return None  # not planned and not done: nothing will make it
                return False
        return True

    running: Dict = {}
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        while queue or running:
            for run in list(queue):
                if len(running) >= max(jobs, 1):
                    break
                state = ready(run)
                if state is None:
                    queue.remove(run)
                    status[run] = 'blocked'
                    finished += 1
                    log(f'[{finished}/{total}] {run.run_id}: blocked, a dependency failed')
                elif state:
                    queue.remove(run)
                    log(f'start {run.run_id}')
                    running[pool.submit(execute, run)] = run
            if not running:
                if queue:  # nothing can start and nothing runs: unsatisfiable dependencies
                    for run in queue:
                        status[run] = 'blocked'
                    queue.clear()
                break
            finished_set, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished_set:
                run = running.pop(future)
                finished += 1
                try:
                    result = future.result()
                except Exception as err:  # noqa: BLE001 - one failed run must not stop the rest
                    status[run] = 'failed'
                    log(f'[{finished}/{total}] {run.run_id}: FAILED: {err}')
                else:
                    status[run] = 'done'
                    log(f'[{finished}/{total}] {run.run_id}: done in {result.get("wall_s")} s '
                        f'wall, {result.get("cpu_s")} s CPU; test mAP best '
                        f'{result["best"]["mAP"]:.3f} last {result["last"]["mAP"]:.3f}')
    return status


def prepare_benchmarks(runs: Iterable[Run], settings: StudySettings,
                       log: Callable[[str], None] = print) -> None:
    """Make every benchmark the runs need, one at a time, before parallel jobs start (so that
    jobs do not generate the same set concurrently)."""
    from mmreweight.datasets import ensure_benchmark
    seen = set()
    for run in runs:
        bench = run.benchmark(settings.benchmark_overrides)
        key = json.dumps(bench, sort_keys=True)
        if key not in seen:
            seen.add(key)
            start = time.monotonic()
            info = ensure_benchmark(bench)
            log(f'benchmark {info["name"]} ready ({time.monotonic() - start:.1f} s)')


def execute_study(runs: Sequence[Run], ctx: StudyContext, jobs: int) -> Dict[Run, str]:
    prepare_benchmarks([r for r in runs if not is_done(ctx.study_dir, r)], ctx.settings,
                       ctx.log)
    return schedule(runs, lambda r: RunExecutor(r, ctx)(), jobs,
                    lambda r: is_done(ctx.study_dir, r), ctx.log)


__all__ = ['SINGLE_THREAD_ENV', 'StepFailed', 'StudyContext', 'RunExecutor', 'run_logged',
           'parse_cfg_options', 'train_seconds_per_iter', 'schedule', 'prepare_benchmarks',
           'execute_study']
