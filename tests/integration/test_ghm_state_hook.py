"""configs/retinanet_ghm.py with a two-iteration warm-up: the log's share and mu scalars are the
losses' own values, and the work dir gets the first and last iterations' gradient densities."""
import json

import pytest

from integration_helpers import build_runner, tiny_cfg
from mmreweight.engine.ghm_state_hook import DENSITY_FILE, ghm_losses


def test_warmup_share_mu_and_density_reach_the_log_and_work_dir(tmp_path):
    cfg = tiny_cfg('retinanet_ghm.py', tmp_path, iters=3)
    for name in ('loss_cls', 'loss_bbox'):
        cfg.model.bbox_head[name].warmup_iters = 2
    cfg.model.bbox_head.loss_bbox.mu_calibration_iters = 1
    runner = build_runner(cfg)
    runner.train()
    losses = {name.rsplit('.', 1)[-1]: loss for name, loss in ghm_losses(runner.model).items()}
    assert set(losses) == {'loss_cls', 'loss_bbox'}
    for name in losses:
        history = runner.message_hub.get_scalar(f'train/ghm/{name}_share').data[0]
        assert list(history) == [0.0, 0.5, 1.0]  # iterations 0, 1, 2 of a 2-iteration warm-up
    mu = runner.message_hub.get_scalar('train/ghm/loss_bbox_mu').data[0]
    assert len(mu) == 3 and len(set(mu)) == 1  # calibrated on iteration 0, then frozen
    assert mu[-1] == pytest.approx(losses['loss_bbox'].current_mu())

    density = json.loads((tmp_path / DENSITY_FILE).read_text())
    assert set(density) == {'bbox_head.loss_cls', 'bbox_head.loss_bbox'}
    for name, loss in ghm_losses(runner.model).items():
        entry = density[name]
        assert entry['edges'] == loss.edges.tolist()
        assert set(entry) == {'edges', 'first iteration (iteration 1)',
                              'last iteration (iteration 3)'}
        last = entry['last iteration (iteration 3)']
        acc = loss.acc_sum
        for level, row in enumerate(last):
            total = float(acc[level].sum())
            assert row == pytest.approx((acc[level] / total).tolist() if total else [0] * len(row))
        assert entry['first iteration (iteration 1)'] != last  # the averages moved
    assert (tmp_path / 'ghm_density.png').stat().st_size > 0
