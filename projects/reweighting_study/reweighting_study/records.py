"""Compact run records: what regenerates the study's tables, figures and verdicts, and no more.

A run directory made by ``tools/study.py`` holds mmengine's full training log (40 kB) and a
diagnostics dump per run (100 kB). The report reads from the log only the val-mAP curve and a few
logged scalars, and draws its figures from the dumps of a few runs. A compact record keeps:

* ``result.json``, ``timings.json`` and the diagnostics summaries and GHM-R profiles (small);
* ``logs/train_log.json``, the digest of ``logs/train.log`` (:func:`digest_train_log`): the val
  curve, the scalars the report plots, and the CPU kernels torch ran (runs repeat exactly only on
  the same kernels);
* the diagnostics dumps and MentorNet-DD mentor files that the report's figures read, and no others.
"""
import json
import os
import re
import tempfile
from typing import Any, Dict, List, Optional, Set, Tuple

from .results import train_scalars, val_curve

#: the digest of a run's training log, relative to the run directory
LOG_DIGEST = os.path.join('logs', 'train_log.json')
TRAIN_LOG = os.path.join('logs', 'train.log')
#: logs that a record drops once digested (the mentor fit's log is not read by the report)
DROPPED_LOGS = (TRAIN_LOG, os.path.join('logs', 'mentor.log'))
#: logged scalars the report reads: the meta hook's mean weights of clean and noisy positives and
#: MentorNet's moving percentile of positives' losses
LOGGED_SCALARS = ('meta_w_clean', 'meta_w_noisy', 'mentornet_pct_ema_pos')
#: the files a record keeps only when the report's figures read them
FIGURE_INPUTS = ('diagnostics.npz', 'mentor.pth')
_CPU_CAPABILITY = re.compile(r'CPU capability usage: (\w+)')


def digest_train_log(path: str) -> Dict[str, Any]:
    """What the report needs of an mmengine training log: ``val_curve`` ((iteration, val mAP)
    pairs), ``scalars`` (``LOGGED_SCALARS`` -> (iteration, value) pairs, empty when not logged)
    as JSON stores them (pairs as lists), and ``cpu_capability`` (torch's CPU kernels, from mmengine's environment block; None if the
    log has no such line)."""
    with open(path, encoding='utf-8') as f:
        capability = _CPU_CAPABILITY.search(f.read())
    scalars = train_scalars(path, LOGGED_SCALARS)
    return dict(val_curve=[list(p) for p in val_curve(path)],
                scalars={k: [list(p) for p in v] for k, v in scalars.items()},
                cpu_capability=capability.group(1) if capability else None)


def log_digest(run_dir: str) -> Dict[str, Any]:
    """The run's training-log digest: from its compact record, else computed from its log; an
    empty dict when it has neither."""
    digest = os.path.join(run_dir, LOG_DIGEST)
    if os.path.isfile(digest):
        with open(digest, encoding='utf-8') as f:
            return json.load(f)
    log = os.path.join(run_dir, TRAIN_LOG)
    return digest_train_log(log) if os.path.isfile(log) else {}


def run_machine(result: Dict[str, Any]) -> str:
    """The machine a run's numbers come from: its recorded CPU model, else (records older than
    the ``machine`` field) the vector ISA torch's kernels used, from its training log, as
    ``'unrecorded CPU (<ISA>)'``. Runs of different machines differ in their last digits, which
    training amplifies, so only runs with the same answer compare without a machine term."""
    cpu = (result.get('machine') or {}).get('cpu')
    if cpu:
        return cpu
    capability = log_digest(result['_dir']).get('cpu_capability') if '_dir' in result else None
    return f'unrecorded CPU ({capability or "unknown ISA"})'


def logged_scalars(run_dir: str) -> Dict[str, List[Tuple[int, float]]]:
    """``LOGGED_SCALARS`` -> (iteration, value) pairs of the run (empty lists when not logged)."""
    scalars = log_digest(run_dir).get('scalars') or {}
    return {k: [tuple(p) for p in scalars.get(k, [])] for k in LOGGED_SCALARS}


def write_log_digest(run_dir: str, dest_dir: str) -> bool:
    """Write the digest of ``run_dir``'s training log to ``dest_dir``; False if it has no log."""
    log = os.path.join(run_dir, TRAIN_LOG)
    if not os.path.isfile(log):
        return False
    os.makedirs(os.path.dirname(os.path.join(dest_dir, LOG_DIGEST)), exist_ok=True)
    with open(os.path.join(dest_dir, LOG_DIGEST), 'w', encoding='utf-8') as f:
        json.dump(digest_train_log(log), f, separators=(',', ':'))
    return True


def digest_run_logs(run_dir: str) -> bool:
    """Digest the run's training log in place and drop the logs the digest replaces; False if
    it has no log."""
    if not write_log_digest(run_dir, run_dir):
        return False
    for name in DROPPED_LOGS:
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            os.remove(path)
    return True


def figure_inputs(records_dir: str) -> Set[str]:
    """Absolute paths of the dumps and mentor files the report's figures read from
    ``records_dir`` (drawn once into a scratch folder)."""
    from . import report
    with tempfile.TemporaryDirectory() as scratch:
        report.FILES_READ.clear()
        report.draw_figures(report.aggregate(report.load_results(records_dir)), scratch)
        return {os.path.abspath(p) for p in report.FILES_READ}


def compact_records(records_dir: str, keep: Optional[Set[str]] = None) -> Dict[str, int]:
    """Make every run record under ``records_dir`` compact (see the module docstring): digest
    its logs, then drop the dumps and mentor files that no figure reads (``keep``: the paths to
    keep, by default :func:`figure_inputs` of the records, computed after the logs are digested).
    Returns counts of what was digested and dropped."""
    runs = sorted(os.path.join(records_dir, d) for d in os.listdir(records_dir)
                  if os.path.isfile(os.path.join(records_dir, d, 'result.json')))
    counts = dict(runs=len(runs), logs_digested=sum(digest_run_logs(d) for d in runs))
    keep = figure_inputs(records_dir) if keep is None else keep
    dropped = 0
    for run_dir in runs:
        for root, _, files in os.walk(run_dir):
            for name in files:
                path = os.path.abspath(os.path.join(root, name))
                if name in FIGURE_INPUTS and path not in keep:
                    os.remove(path)
                    dropped += 1
    counts['figure_inputs_dropped'] = dropped
    return counts


__all__ = ['LOG_DIGEST', 'LOGGED_SCALARS', 'FIGURE_INPUTS', 'digest_train_log', 'log_digest',
           'run_machine', 'logged_scalars', 'write_log_digest', 'digest_run_logs',
           'figure_inputs', 'compact_records']
