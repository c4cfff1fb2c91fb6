"""Atomic publishing: racing processes (as DDP ranks) and the command-line tool."""
import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_helpers import SMALL

from mmreweight.datasets import load_benchmark_info, make_benchmark
from mmreweight.datasets.atomic_directory import publish_directory, staging_directory
from mmreweight.testing.tools import load_tool

REPO = Path(__file__).resolve().parents[2]


def test_publish_loses_a_race_without_touching_the_winner(tmp_path):
    target = tmp_path / 'set'
    target.mkdir()
    (target / 'winner').write_text('first')
    with staging_directory(str(target)) as staging:
        assert os.path.basename(staging).startswith('.set.tmp-')
        Path(staging, 'loser').write_text('second')
        assert publish_directory(staging, str(target)) is False
        assert (target / 'winner').read_text() == 'first' and not (target / 'loser').exists()
        assert publish_directory(staging, str(target), replace=True) is True
    assert sorted(os.listdir(target)) == ['loser']
    assert sorted(os.listdir(tmp_path)) == ['set']


def test_a_rank_that_loses_the_race_uses_the_winners_set(tmp_path, monkeypatch):
    from mmreweight.datasets import benchmark as benchmark_module
    real_build = benchmark_module.build_benchmark
    root = str(tmp_path / 'set')

    calls = []

    def other_rank_finishes_first(cfg, source, out_dir):
        calls.append(out_dir)
        if len(calls) == 1:  # the winner publishes while we are still building
            make_benchmark(root, **SMALL)
        return real_build(cfg, source, out_dir)

    monkeypatch.setattr(benchmark_module, 'build_benchmark', other_rank_finishes_first)
    info = benchmark_module.ensure_benchmark(dict(SMALL), root)
    assert info['root'] == root and info['params']['train_images'] == SMALL['train_images']
    assert len(calls) == 2  # both built; the first one's rename lost
    assert sorted(os.listdir(tmp_path)) == ['set']  # the loser's staging folder is gone


def test_two_tool_processes_racing_for_one_folder(tmp_path):
    out = tmp_path / 'race'
    args = [sys.executable, str(REPO / 'tools' / 'make_benchmark.py'), '--out', str(out),
            '--noise-type', 'pairflip', '--noise-rate', '0.3', '--imbalance-ratio', '5']
    args += [f'--{k.replace("_", "-")}={v}' for k, v in SMALL.items()]
    env = dict(os.environ, PYTHONPATH=str(REPO))  # this checkout, not an installed copy
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr
        assert 'train images     60' in stdout and 'as labelled (noisy)' in stdout
    assert sorted(os.listdir(tmp_path)) == ['race']  # no staging folders left
    # identical to an in-process run with the same parameters
    ref = make_benchmark(str(tmp_path / 'ref'), noise_type='pairflip', noise_rate=0.3,
                         imbalance_ratio=5, **SMALL)['root']
    cmp = filecmp.dircmp(str(out), ref)
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    for sub in ('train', 'val', 'test', 'meta', 'annotations'):
        files = os.listdir(out / sub)
        match, mismatch, errors = filecmp.cmpfiles(out / sub, os.path.join(ref, sub), files,
                                                   shallow=False)
        assert not mismatch and not errors, sub
    assert load_benchmark_info(str(out))['params']['noise_type'] == 'pairflip'


def _tool():
    """tools/make_benchmark.py as a module, to call its main() in this process."""
    return load_tool(REPO / 'tools' / 'make_benchmark.py')


def test_tool_reports_bad_input_as_an_error(tmp_path, capsys):
    code = _tool().main(['--out', str(tmp_path / 'x'), '--noise-type', 'uniform',
                         '--noise-rate', '1.5'])
    assert code == 2
    assert 'noise_rate must be in [0, 1)' in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_tool_summary_counts(tmp_path, capsys):
    options = [f'--{k.replace("_", "-")}={v}' for k, v in SMALL.items()]
    assert _tool().main(['--out', str(tmp_path / 'x'), '--noise-type', 'uniform',
                         '--noise-rate', '0.5', '--seed', '4'] + options) == 0
    out = capsys.readouterr().out
    info = load_benchmark_info(str(tmp_path / 'x'))
    assert info['name'] in out and info['params']['seed'] == 4
    train = [line for line in out.splitlines() if line.strip().startswith('train')][0]
    flipped = info['splits']['train']['flipped'] / info['splits']['train']['objects']
    assert f'flipped {flipped:6.1%}' in train and flipped == pytest.approx(0.5, abs=0.01)
