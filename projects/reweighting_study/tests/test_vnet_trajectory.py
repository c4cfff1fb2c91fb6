"""The VNet trajectory of an MW-Net work directory: curves, norms and logged scalars read back
from checkpoints written as the hook writes them."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmreweight.engine.meta_hook import CHECKPOINT_KEY
from reweighting_study import vnet_trajectory as vt
from mmreweight.weighting.mwnet import MetaWeightNetWeighter, VNet

PROJECT = Path(__file__).resolve().parents[1]
REPO = PROJECT.parents[1]


def _save(path: Path, weighter, iteration: int, kind: str = 'MetaWeightNetWeighter'):
    state = (weighter.meta_state_dict() if hasattr(weighter, 'meta_state_dict')
             else dict(weighter=weighter.state_dict()))
    torch.save({'meta': dict(iter=iteration), 'state_dict': {},
                CHECKPOINT_KEY: dict(type=kind, state=state)}, path)


@pytest.fixture
def work_dir(tmp_path):
    torch.manual_seed(0)
    w = MetaWeightNetWeighter(optim_wrapper=dict(type='Adam', lr=1e-2, weight_decay=1e-3))
    snapshots = []
    for it in (10, 20, 30):
        for _ in range(3):  # a few Adam steps of some gradient between checkpoints
            for p in w.vnet.parameters():
                p.grad = torch.randn_like(p)
            w.optim_wrapper.step()
            w.optim_wrapper.zero_grad()
        _save(tmp_path / f'iter_{it}.pth', w, it)
        snapshots.append({k: v.clone() for k, v in w.vnet.state_dict().items()})
    (tmp_path / 'last_checkpoint').write_text('iter_30.pth')
    logs = tmp_path / '20261203_000000' / 'vis_data'
    logs.mkdir(parents=True)
    with open(logs / 'scalars.json', 'w') as f:
        for it, value in ((10, -3.0), (20, -4.5)):
            f.write(json.dumps(dict(loss=1.0, meta_hypergrad_log10=value, iter=it)) + '\n')
        f.write(json.dumps(dict(coco_bbox_mAP=0.1, step=20)) + '\n')  # a val line: no iter
    return tmp_path, w, snapshots


def test_trajectory_reads_every_checkpoint(work_dir):
    path, w, snapshots = work_dir
    grid = [0.0, 0.5, 2.0, 5.0]
    traj = vt.trajectory(str(path), grid)
    assert [p['iter'] for p in traj['points']] == [10, 20, 30]
    assert traj['hypergrad_log10'] == [[10, -3.0], [20, -4.5]]
    for point, sd in zip(traj['points'], snapshots):
        vnet = VNet(100)
        vnet.load_state_dict(sd)
        expected = vnet(torch.tensor(grid)).tolist()
        assert point['curve'] == pytest.approx(expected, rel=1e-6)
        phi = math.sqrt(sum(float((v.double() ** 2).sum()) for v in sd.values()))
        assert point['phi_norm'] == pytest.approx(phi, rel=1e-9)
        assert point['weight_decay'] == 1e-3
        assert point['decay_term'] == pytest.approx(1e-3 * phi, rel=1e-9)
    # Adam's first moment of the last checkpoint is the optimizer's own
    m = torch.cat([w.optim_wrapper.optimizer.state[p]['exp_avg'].flatten()
                   for p in w.vnet.parameters()])
    assert traj['points'][-1]['adam_m_norm'] == pytest.approx(float(m.norm()), rel=1e-6)


def test_trajectory_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match='no iter_\\*.pth checkpoint'):
        vt.trajectory(str(tmp_path), [0.0])
    torch.save({'meta': dict(iter=5), 'state_dict': {}}, tmp_path / 'iter_5.pth')
    with pytest.raises(ValueError, match='holds no meta-reweighting state, not a '
                                         'MetaWeightNetWeighter'):
        vt.trajectory(str(tmp_path), [0.0])
    torch.save({'meta': dict(iter=5), 'state_dict': {},
                CHECKPOINT_KEY: dict(type='L2RWWeighter', state=dict(weighter={}))},
               tmp_path / 'iter_5.pth')
    with pytest.raises(ValueError, match='holds a L2RWWeighter state'):
        vt.trajectory(str(tmp_path), [0.0])


def test_tool_writes_json_and_figure(work_dir, tmp_path_factory):
    path, _, _ = work_dir
    out = tmp_path_factory.mktemp('vt')
    proc = subprocess.run([sys.executable, str(PROJECT / 'tools' / 'vnet_trajectory.py'), str(path),
                           '--out', str(out), '--curves', '2'],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert 'iter     30: VNet' in proc.stdout
    traj = json.loads((out / 'vnet_trajectory.json').read_text())
    assert len(traj['points']) == 3 and len(traj['losses']) == 101
    assert (out / 'vnet_trajectory.png').stat().st_size > 0
