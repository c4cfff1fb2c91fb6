"""Loading a checkpoint into a loss with running statistics: statistics of another shape (other
GHM bins or FPN levels, CB classes) are an error naming the key and the fix unless the loss is
told to restart them; missing statistics (a checkpoint of another loss) start fresh with a
warning; mmdet's single-row GHM buffer still loads into every level."""
from unittest import mock

import pytest
import torch
from mmdet.models.losses import GHMC as MMDetGHMC

from mmreweight.losses import GHMC, GHMR, CBFocalLoss, FocalLoss


def trained_state(loss):
    loss.acc_sum.uniform_(1, 100)
    return {k: v.clone() for k, v in loss.state_dict().items()}


@pytest.mark.parametrize('saved,resumed', [
    (dict(bins=10), dict(bins=30)),
    (dict(bins=30, num_levels=3), dict(bins=30, num_levels=5)),
])
def test_ghm_statistics_of_another_shape_are_an_error(saved, resumed):
    state = trained_state(GHMC(momentum=0.75, **saved))
    with pytest.raises(RuntimeError, match=r'acc_sum in the checkpoint has shape .*'
                                           r'restart_statistics=True'):
        GHMC(momentum=0.75, **resumed).load_state_dict(state, strict=False)
    fresh = GHMC(momentum=0.75, restart_statistics=True, **resumed)
    with mock.patch('mmreweight.losses.base.print_log') as log:
        fresh.load_state_dict(state, strict=False)
    assert 'start fresh' in log.call_args[0][0]
    assert float(fresh.acc_sum.abs().sum()) == 0


def test_matching_and_mmdet_statistics_load():
    state = trained_state(GHMC(bins=30, momentum=0.75, num_levels=3))
    resumed = GHMC(bins=30, momentum=0.75, num_levels=3)
    resumed.load_state_dict(state)
    torch.testing.assert_close(resumed.acc_sum, state['acc_sum'], rtol=0, atol=0)
    mmdet = MMDetGHMC(bins=30, momentum=0.75)
    mmdet.acc_sum.uniform_(1, 100)
    ours = GHMC(bins=30, momentum=0.75, num_levels=3)
    ours.load_state_dict(mmdet.state_dict(), strict=False)
    torch.testing.assert_close(ours.acc_sum, mmdet.acc_sum.expand(3, -1), rtol=0, atol=0)


@pytest.mark.parametrize('loss', [GHMC(momentum=0.75), GHMR(mu='auto', momentum=0.7)])
def test_missing_statistics_start_fresh_with_a_warning(loss):
    focal_state = FocalLoss().state_dict()  # empty: a focal detector's checkpoint of this head
    with mock.patch('mmreweight.losses.base.print_log') as log:
        loss.load_state_dict(focal_state, strict=False)
    messages = ' '.join(call[0][0] for call in log.call_args_list)
    assert 'acc_sum is not in the checkpoint' in messages
    if isinstance(loss, GHMR):
        assert 'mu_value is not in the checkpoint' in messages


def test_class_counts_of_another_class_count_are_an_error():
    state = CBFocalLoss(9, class_counts=list(range(1, 10))).state_dict()
    with pytest.raises(RuntimeError, match=r'class_counts in the checkpoint has shape \(9,\) '
                                           r'.*\(10,\).*restart_statistics=True'):
        CBFocalLoss(10).load_state_dict(state)
    restarted = CBFocalLoss(10, restart_statistics=True)
    restarted.load_state_dict(state, strict=False)
    assert int(restarted.class_counts.sum()) == 0
