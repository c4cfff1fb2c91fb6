"""The one study run that trains: 2 iterations of focal loss on a tiny benchmark through
tools/study.py (train, test, diagnose, result.json), then resume and report."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
REPO = PROJECT.parents[1]
TINY = ['train_images=16', 'val_images=8', 'test_images=8', 'meta_images=8']

pytestmark = pytest.mark.slow


def _run(args, env):
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_study_runs_resumes_and_reports(tmp_path):
    env = dict(os.environ, MMREWEIGHT_DATA_ROOT=str(tmp_path / 'data'), PYTHONWARNINGS='ignore')
    study = tmp_path / 'study'
    cmd = [PROJECT / 'tools' / 'study.py', '--study-dir', study, '--iters', '2', '--val-evals', '1',
           '--seeds', '1', '--only', 'method=focal,condition=clean,source=mnist',
           '--diag-batches', '1', '--benchmark', *TINY]
    out = _run(cmd, env)
    assert '1 runs planned, 0 already done, 1 to run' in out
    run_dir = study / 'mnist-clean-focal-s0'
    result = json.loads((run_dir / 'result.json').read_text())
    assert result['best']['iter'] == result['last']['iter'] == 2
    assert set(result['last']) >= {'mAP', 'AP50', 'per_class_AP', 'rare_AP'}
    assert len(result['rare_classes']) == 3 and len(result['last']['per_class_AP']) == 10
    assert result['benchmark']['train_images'] == 16
    assert {'train', 'test_last', 'diagnostics'} <= set(result['timings'])
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
    assert result['machine']['commit'] in ({head, head + '+dirty'} if head else {None})
    assert (run_dir / 'diagnostics' / 'diagnostics.npz').exists()
    assert (run_dir / 'diagnostics' / 'weight_vs_loss.png').exists()
    assert (run_dir / 'config.py').exists()

    out = _run(cmd, env)  # resumed: nothing to do
    assert '1 already done, 0 to run' in out

    docs = tmp_path / 'docs'
    _run([PROJECT / 'tools' / 'study_report.py', study, '--out', docs], env)
    assert '| clean | focal | 1 |' in (docs / 'README.md').read_text()
    assert (docs / 'map_by_method.png').exists()
