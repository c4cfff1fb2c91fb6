"""tools/soak.py measures what it claims: RSS from /proc, the slope, and non-finite losses.
(The soak itself, thousands of iterations, is not part of the suite.)"""
import importlib.util
import json
import os

import pytest
import torch
from integration_helpers import REPO, TINY, PoisonLogitsHook

spec = importlib.util.spec_from_file_location('soak', REPO / 'tools' / 'soak.py')
soak = importlib.util.module_from_spec(spec)
spec.loader.exec_module(soak)


def test_rss_matches_an_allocation():
    before = soak.tree_rss_kib()['main']
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    grown = soak.tree_rss_kib()['main'] - before
    assert 56 * 1024 < grown < 80 * 1024, grown
    del block


def test_slope_is_least_squares():
    assert soak.linear_slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)
    # noisy points: numpy's degree-1 fit as the reference
    import numpy as np
    xs, ys = [0, 50, 100, 150, 200], [10.0, 12.5, 11.0, 15.0, 16.0]
    assert soak.linear_slope(xs, ys) == pytest.approx(np.polyfit(xs, ys, 1)[0])
    assert soak.linear_slope([5], [1.0]) == 0.0


@pytest.mark.slow
def test_soak_counts_non_finite_losses(tmp_path, monkeypatch):
    monkeypatch.setenv('MMREWEIGHT_DATA_ROOT', str(tmp_path / 'data'))
    out = tmp_path / 'soak.json'
    opts = ['train_dataloader.batch_size=2', 'param_scheduler=[]']
    opts += [f'train_dataloader.dataset.benchmark.{k}={v}' for k, v in TINY.items()]
    args = soak.parse_args([str(REPO / 'configs' / 'retinanet_focal.py'), '--iters', '4',
                            '--every', '2', '--work-dir', str(tmp_path / 'work'), '--out',
                            str(out), '--cfg-options', *opts])
    # from iteration 2 on the logits hold +inf: focal loss becomes inf, then NaN
    returned = soak.run(args, extra_hooks=[PoisonLogitsHook(at=2)])
    result = json.loads(out.read_text())
    assert result['summary'] == returned['summary']
    summary = result['summary']
    assert summary['iterations'] == 4 and result['finished'] and result['error'] is None
    assert [s['iter'] for s in result['samples']] == [0, 2, 4]
    assert summary['first_nonfinite_iter'] == 3  # the third iteration (runner.iter == 2)
    assert summary['nonfinite_by_key']['loss_cls'] == 2
    assert summary['nonfinite_count'] >= 2
    assert summary['rss_max_mib'] >= summary['rss_start_mib'] > 100
    assert not list((tmp_path / 'work').rglob('*.pth'))  # checkpoints off by default
    assert os.path.isfile(out)
