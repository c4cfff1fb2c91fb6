"""The GHM-C swap beyond RetinaNet: configs/other_detectors/{fcos,atss}_ghm.py train on the tiny
benchmark with GHM-C inside mmdet's FCOS and ATSS heads (warming up from focal loss), and their
focal baselines differ from them in the classification loss only (and, for ATSS, the head that
calls it once over all FPN levels)."""
import math

import pytest
from mmengine.config import Config

from integration_helpers import CONFIGS, build_runner, tiny_cfg
from mmreweight.engine.ghm_state_hook import ghm_losses


@pytest.mark.parametrize('detector', ['fcos', 'atss'])
def test_ghmc_trains_inside_fcos_and_atss(detector, tmp_path):
    cfg = tiny_cfg(f'other_detectors/{detector}_ghm.py', tmp_path, iters=2)
    cfg.model.bbox_head.loss_cls.warmup_iters = 1
    runner = build_runner(cfg)
    runner.train()
    (name, loss), = ghm_losses(runner.model).items()
    assert name == 'bbox_head.loss_cls'
    assert float(loss.acc_sum.sum()) > 0  # the head called it and its moving average counted
    assert list(runner.message_hub.get_scalar('train/ghm/loss_cls_share').data[0]) == [0.0, 1.0]
    assert math.isfinite(runner.message_hub.get_scalar('train/loss').current())


@pytest.mark.parametrize('detector', ['fcos', 'atss'])
def test_focal_baseline_differs_in_the_classification_loss_only(detector):
    ghm = Config.fromfile(str(CONFIGS / f'other_detectors/{detector}_ghm.py'))
    focal = Config.fromfile(str(CONFIGS / f'other_detectors/{detector}_focal.py'))
    assert ghm.model.bbox_head.loss_cls.type == 'GHMC'
    assert focal.model.bbox_head.loss_cls.type == 'FocalLoss'
    # ATSS's head calls its loss level by level: GHM's uses the joint-level head (FCOS's calls
    # it once already)
    heads = dict(fcos=('FCOSHead', 'FCOSHead'), atss=('JointLevelATSSHead', 'ATSSHead'))[detector]
    assert (ghm.model.bbox_head.type, focal.model.bbox_head.type) == heads
    for cfg in (ghm, focal):
        cfg.model.bbox_head.pop('loss_cls')
        cfg.model.bbox_head.pop('type')
        cfg.pop('custom_hooks', None)
    assert ghm.to_dict() == focal.to_dict()
