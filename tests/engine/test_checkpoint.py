"""mmengine checkpoints load under torch>=2.6's weights_only default, safely."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn
from torch.utils.data import Dataset

import mmreweight  # noqa: F401  (installs the safe loader)
from mmreweight.engine.checkpoint import TRUST_ENV, load_checkpoint_file


class _Linear(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, x, mode='loss'):
        return dict(loss=self.fc(torch.stack(x)).pow(2).mean())


class _Ones(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(x=torch.full((2,), float(i)))


def _runner(work_dir, max_iters, **kwargs):
    return Runner(
        model=_Linear(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=_Ones(), sampler=dict(type='DefaultSampler', shuffle=True),
                              batch_size=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        randomness=dict(seed=0), **kwargs)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('ckpt')
    _runner(work_dir, 2).train()
    return work_dir / 'iter_2.pth'


def test_mmengine_checkpoint_needs_more_than_torch_default(checkpoint):
    # the reason this module exists: the stock safe unpickler refuses mmengine's own checkpoints
    with pytest.raises(Exception, match='HistoryBuffer|Unsupported global'):
        torch.load(checkpoint, weights_only=True)


def test_mmengine_loader_reads_its_checkpoint_safely(checkpoint):
    ckpt = _load_checkpoint(str(checkpoint), map_location='cpu')
    assert {'meta', 'state_dict', 'optimizer', 'message_hub'} <= set(ckpt)
    assert ckpt['meta']['iter'] == 2


def test_resume_restores_iteration_and_optimizer(checkpoint, tmp_path):
    saved = _load_checkpoint(str(checkpoint), map_location='cpu')
    runner = _runner(tmp_path, 4, resume=True, load_from=str(checkpoint))
    runner.load_or_resume()
    assert runner.iter == 2
    momentum = runner.optim_wrapper.optimizer.state_dict()['state'][0]['momentum_buffer']
    torch.testing.assert_close(momentum, saved['optimizer']['state'][0]['momentum_buffer'])
    torch.testing.assert_close(runner.model.fc.weight, saved['state_dict']['fc.weight'])


def test_corrupt_checkpoint_is_a_clear_error(checkpoint, tmp_path):
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(checkpoint.read_bytes()[:200])
    with pytest.raises(RuntimeError, match='corrupt or truncated'):
        load_checkpoint_file(str(broken))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='can not be found'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


class Foreign:
    """Stands for any class a checkpoint might pickle that is not plain data."""

    def __init__(self):
        self.a = 1


def test_foreign_objects_need_explicit_trust(tmp_path, monkeypatch):
    path = tmp_path / 'foreign.pth'
    torch.save({'odd': Foreign()}, path)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(RuntimeError, match=TRUST_ENV):
        load_checkpoint_file(str(path))
    monkeypatch.setenv(TRUST_ENV, '1')
    assert load_checkpoint_file(str(path))['odd'].a == 1
