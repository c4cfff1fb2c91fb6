"""GHM-R's bin profile: against mmdet's GHMR by autograd and against values by hand."""
import math

import pytest
import torch
from mmdet.models.losses import GHMR as MMDetGHMR

from mmreweight.analysis.box_regression import ghmr_profile, merge_profiles


def test_all_in_the_top_bin_by_hand():
    """2 positives, every |d| = 1: one non-empty bin holding all N = 8 elements, so GHM-R's
    gradient per element is loss_weight * g / N against L1's 1 / avg_factor."""
    pred = torch.ones(3, 4)
    target = torch.zeros(3, 4)
    weight = torch.tensor([[1.0] * 4, [1.0] * 4, [0.0] * 4])
    prof = ghmr_profile(pred, target, weight, avg_factor=2, mu=0.02, bins=10, loss_weight=10)
    g = 1 / math.sqrt(1 + 0.02 ** 2)
    assert prof['counts'] == [0] * 9 + [8]
    assert prof['ratio_sum'][9] == pytest.approx(8 * 10 * g / 8 * 2)
    assert prof['elements'] == 8 and prof['abs_delta_sum'] == pytest.approx(8)


def test_matches_mmdet_ghmr_gradient():
    g = torch.Generator().manual_seed(0)
    # deltas on every scale: some far below mu (low bins), most far above (top bin)
    pred = torch.randn(200, 4, generator=g) * torch.logspace(-3, 0, 200).unsqueeze(1)
    target = torch.zeros(200, 4)
    weight = (torch.rand(200, 1, generator=g) < 0.3).float().expand(200, 4).contiguous()
    avg = float(weight[:, 0].sum())
    prof = ghmr_profile(pred, target, weight, avg, mu=0.02, bins=10, loss_weight=10)
    p = pred.clone().requires_grad_()
    ref = torch.autograd.grad(MMDetGHMR(mu=0.02, bins=10, momentum=0, loss_weight=10)(
        p, target, weight), p)[0]
    valid = weight > 0
    gnorm = (pred / torch.sqrt(pred ** 2 + 0.02 ** 2)).abs()[valid]
    slot = (gnorm * 10).long().clamp(max=9)
    want = torch.zeros(10).index_add_(0, slot, ref[valid].abs() * avg)
    assert torch.allclose(torch.tensor(prof['ratio_sum']), want, rtol=1e-5, atol=1e-6)
    assert prof['counts'] == torch.bincount(slot, minlength=10).float().tolist()
    assert sum(c > 0 for c in prof['counts']) >= 5  # not a one-bin case


def test_merge_adds_batches():
    a = dict(counts=[1, 3], ratio_sum=[2.0, 3.0], elements=4, abs_delta_sum=2.0)
    b = dict(counts=[0, 1], ratio_sum=[0.0, 5.0], elements=1, abs_delta_sum=3.0)
    m = merge_profiles([a, b], mu=0.02)
    assert m['bin_frac'] == pytest.approx([0.2, 0.8])
    assert m['grad_ratio'] == pytest.approx([2.0, 2.0])
    assert m['mean_grad_ratio'] == pytest.approx(10 / 5)
    assert m['mean_abs_delta'] == pytest.approx(1.0) and m['mu'] == 0.02
    empty_bin = merge_profiles([b])
    assert math.isnan(empty_bin['grad_ratio'][0])


def test_errors():
    with pytest.raises(ValueError, match='one shape'):
        ghmr_profile(torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(2, 1), 1)
    with pytest.raises(ValueError, match='avg_factor must be > 0'):
        ghmr_profile(torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(2, 4), 0)
    with pytest.raises(ValueError, match='no profile'):
        merge_profiles([])
