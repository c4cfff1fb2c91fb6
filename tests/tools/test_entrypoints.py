"""The entry points users call, `mim train/test mmreweight` and tools/train.py, for a few steps.

These run the *installed* package (`mim` runs <site-packages>/mmreweight/.mim/tools/train.py), which
tools/setup_env.sh reinstalls from the working tree on every run.
"""
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from tool_testing import TINY, run as _run, tiny_options as _tiny_options

REPO = Path(__file__).resolve().parents[2]
MIM = Path(sys.executable).with_name('mim')

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    data = tmp_path_factory.mktemp('data')
    return dict(os.environ, MMREWEIGHT_DATA_ROOT=str(data), PYTHONWARNINGS='ignore')


def test_mim_train_and_test_from_another_folder(tmp_path, env):
    if not MIM.exists():
        pytest.skip('mim is not installed in this environment')
    work = tmp_path / 'work'
    # config given by bare name: mim finds it in the installed package's .mim/configs
    _run([MIM, 'train', 'mmreweight', 'retinanet_focal.py', '--work-dir', work,
          '--cfg-options', *_tiny_options(4)], cwd=tmp_path, env=env)
    ckpt = (work / 'last_checkpoint').read_text().strip()
    assert ckpt.endswith('iter_4.pth')
    out = tmp_path / 'metrics.json'
    log = _run([MIM, 'test', 'mmreweight', 'retinanet_focal.py', '--checkpoint', ckpt,
                '--work-dir', work, '--metrics-out', out, '--cfg-options', *_tiny_options(4),
                # an untrained detector scores below the default 0.05: keep its boxes so that
                # CocoMetric has predictions to evaluate
                'model.test_cfg.score_thr=0.0'],
               cwd=tmp_path, env=env)
    metrics = json.loads(out.read_text())['metrics']
    assert 'coco/bbox_mAP' in metrics and 'coco/bbox_mAP_50' in metrics
    assert 'coco/0_precision' in metrics  # per-class AP from CocoMetric(classwise=True)
    assert 'Average Precision' in log  # pycocotools' summary table


@pytest.mark.parametrize('config', ['retinanet_l2rw.py', 'retinanet_mwnet.py',
                                    'retinanet_mentornet.py', 'retinanet_cb_focal.py'])
def test_mim_trains_and_evaluates_each_method(config, tmp_path, env):
    """Two iterations and a COCO evaluation of each reweighting config through `mim train`."""
    if not MIM.exists():
        pytest.skip('mim is not installed in this environment')
    opts = _tiny_options(2) + ['model.test_cfg.score_thr=0.0']
    if 'l2rw' in config or 'mwnet' in config:  # the clean (meta) split has its own dataloader
        opts += [f'custom_hooks.0.clean_dataloader.dataset.benchmark.{k}={v}'
                 for k, v in TINY.items()]
        opts += ['custom_hooks.0.clean_dataloader.num_workers=0',
                 'custom_hooks.0.clean_dataloader.persistent_workers=False',
                 'custom_hooks.0.begin=0']  # no warm-up: the method weights from iteration 0
    log = _run([MIM, 'train', 'mmreweight', config, '--work-dir', tmp_path / 'work',
                '--cfg-options', *opts], cwd=tmp_path, env=env)
    assert 'coco/bbox_mAP' in log
    assert (tmp_path / 'work' / 'iter_2.pth').exists()
    if 'cb_focal' not in config:  # the weighter ran and logged its anchor weights
        assert 'meta_w_pos' in log


def test_train_resume_continues_from_checkpoint(tmp_path, env):
    work = tmp_path / 'work'
    train = [sys.executable, REPO / 'tools' / 'train.py', REPO / 'configs' / 'retinanet_ghm.py',
             '--work-dir', work]
    _run(train + ['--cfg-options', *_tiny_options(2)], cwd=tmp_path, env=env)
    first = torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=False)
    # resume with a longer schedule: starts at iteration 2 with the saved GHM moving averages
    log = _run(train + ['--resume', '--cfg-options', *_tiny_options(4)], cwd=tmp_path, env=env)
    assert 'resumed epoch: 0, iter: 2' in log
    assert (work / 'iter_4.pth').exists()
    assert any(k.endswith('loss_cls.acc_sum') for k in first['state_dict'])
