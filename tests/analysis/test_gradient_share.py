"""classification_gradient_share: shares computed by hand for a one-bin GHM-C (plain mean BCE per
call), and equal per-level and all-level shares for focal loss (summed, divided by positives)."""
import pytest
import torch

from mmreweight.analysis.gradient_share import classification_gradient_share
from mmreweight.losses import GHMC, FocalLoss


def two_levels():
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(6, 3, generator=g, dtype=torch.float64),
              torch.randn(2, 3, generator=g, dtype=torch.float64)]
    labels = [torch.tensor([0, 3, 3, 2, 3, 3]), torch.tensor([3, 3])]  # 3 = background
    weights = [torch.ones(6, dtype=torch.float64), torch.ones(2, dtype=torch.float64)]
    return logits, labels, weights


def by_hand(logits, labels, joint):
    """One bin: every weight is 1, the loss is the mean BCE of each call, so an element's
    gradient is |sigmoid(x) - t| / (elements in its call)."""
    parts = []
    total_elements = sum(x.numel() for x in logits)
    for x, y in zip(logits, labels):
        t = torch.zeros_like(x)
        rows = (y < 3).nonzero().view(-1)
        t[rows, y[rows]] = 1
        grad = (torch.sigmoid(x) - t).abs() / (total_elements if joint else x.numel())
        positive = float(grad[rows, y[rows]].sum())
        parts.append((positive, float(grad.sum()) - positive))
    total = sum(p + n for p, n in parts)
    return [p / total for p, _ in parts], [n / total for _, n in parts]


@pytest.mark.parametrize('joint', [False, True])
def test_one_bin_ghmc_shares_by_hand(joint):
    logits, labels, weights = two_levels()
    share = classification_gradient_share(GHMC(bins=1, paper_exact=True), logits, labels, weights,
                                          avg_factor=2.0, joint=joint)
    positive, negative = by_hand(logits, labels, joint)
    assert share['positive'] == pytest.approx(positive, rel=1e-6)
    assert share['negative'] == pytest.approx(negative, rel=1e-6)
    assert share['positives'] == [2, 0]
    assert sum(share['positive']) + sum(share['negative']) == pytest.approx(1.0)


def test_per_level_and_all_level_calls_differ_for_ghm_only():
    logits, labels, weights = two_levels()
    focal = [classification_gradient_share(FocalLoss(), logits, labels, weights, 2.0, joint)
             for joint in (False, True)]
    assert focal[0]['positive'] == pytest.approx(focal[1]['positive'], rel=1e-9)
    ghm = [classification_gradient_share(GHMC(bins=1, paper_exact=True), logits, labels,
                                         weights, 2.0, joint) for joint in (False, True)]
    # the small level, called alone, weighs more
    assert ghm[0]['negative'][1] > 1.5 * ghm[1]['negative'][1]
