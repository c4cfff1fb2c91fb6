"""NonFiniteGuardHook: a run whose loss or parameters turn non-finite stops with an error naming
the iteration and the term, and the last checkpoint it leaves is finite."""
import pytest
import torch
from mmengine.hooks import Hook

from mmreweight.engine import load_checkpoint_file
from mmreweight.engine.non_finite_guard import first_non_finite_loss
from mmreweight.registry import HOOKS

from integration_helpers import add_hooks, build_runner, tiny_cfg


def test_the_failing_term_is_named_before_the_total():
    nan, one = torch.tensor(float('nan')), torch.tensor(1.0)
    assert first_non_finite_loss(dict(loss=nan, loss_cls=one, loss_bbox=nan)) == 'loss_bbox'
    assert first_non_finite_loss(dict(loss=float('inf'), acc=nan)) == 'loss'
    assert first_non_finite_loss(dict(loss=one, loss_cls=one)) is None


@HOOKS.register_module(force=True)
class CorruptParameterHook(Hook):
    """After iteration ``at``'s step, sets one parameter to NaN (a non-finite gradient would)."""
    priority = 'HIGHEST'

    def __init__(self, at: int):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            with torch.no_grad():
                runner.model.bbox_head.retina_reg.weight[0, 0, 0, 0] = float('nan')


def _finite_checkpoint(path) -> bool:
    state = load_checkpoint_file(str(path))['state_dict']
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize('poison, message', [
    (dict(type='PoisonLogitsHook', at=3), r'non-finite loss_cls \((nan|inf)\) at iteration 4'),
    (dict(type='CorruptParameterHook', at=4),
     r'parameter bbox_head.retina_reg.weight became non-finite at iteration 4'),
])
def test_training_stops_at_the_first_non_finite_value(tmp_path, poison, message):
    cfg = add_hooks(tiny_cfg('retinanet_focal.py', tmp_path, iters=6, ckpt_interval=1), poison)
    runner = build_runner(cfg)
    with pytest.raises(FloatingPointError, match=message) as err:
        runner.train()
    assert 'the last checkpoint in the work dir is the last finite one' in str(err.value)
    saved = sorted(p.name for p in tmp_path.glob('iter_*.pth'))
    assert saved == ['iter_1.pth', 'iter_2.pth', 'iter_3.pth']
    assert _finite_checkpoint(tmp_path / 'iter_3.pth')


def test_without_the_guard_the_nan_run_saves_non_finite_checkpoints(tmp_path):
    # the reference behaviour the guard exists for: mmengine trains on and saves the NaN model
    cfg = add_hooks(tiny_cfg('retinanet_focal.py', tmp_path, iters=5, ckpt_interval=1),
                    dict(type='PoisonLogitsHook', at=3))
    cfg.default_hooks.pop('non_finite')
    build_runner(cfg).train()
    assert not _finite_checkpoint(tmp_path / 'iter_5.pth')
