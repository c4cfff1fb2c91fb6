"""Class-balanced weights and CBFocalLoss against the formula of Cui et al. evaluated by hand and
against torchvision's / torch's losses weighted by those hand-computed weights."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.models.losses import FocalLoss as MMDetFocalLoss
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss

from loss_testing import grads, make_cls_batch
from mmreweight.losses import CBFocalLoss, class_balanced_weights
from mmreweight.testing.devices import cpu_and_cuda

TOL = dict(rtol=1e-6, atol=1e-6)


def by_hand(counts, beta):
    """w_c = (1 - beta) / (1 - beta^n_c), normalised to sum to C (plain Python floats)."""
    w = [(1 - beta) / (1 - beta**n) for n in counts]
    return [x * len(w) / sum(w) for x in w]


@pytest.mark.parametrize('counts,beta', [([10, 100, 1000], 0.99), ([1, 5, 20000, 3], 0.9999),
                                         ([7, 7, 7], 0.9), ([3, 50, 8], 0.0),
                                         ([2, 1000000], 0.999999)])
def test_weights_by_hand(counts, beta):
    w = class_balanced_weights(counts, beta)
    assert w.dtype == torch.float32
    assert w.tolist() == pytest.approx(by_hand(counts, beta), rel=1e-6)
    assert w.sum().item() == pytest.approx(len(counts), rel=1e-6)


def test_beta_zero_is_uniform_and_beta_near_one_is_inverse_frequency():
    assert class_balanced_weights([3, 50, 8], 0.0).tolist() == [1.0, 1.0, 1.0]
    w = class_balanced_weights([10, 40], 1 - 1e-9)
    assert (w[0] / w[1]).item() == pytest.approx(4.0, rel=1e-6)


@pytest.mark.parametrize('beta', [-0.1, 1.0, 1.5])
def test_beta_outside_0_1_raises(beta):
    with pytest.raises(ValueError, match='beta'):
        class_balanced_weights([1, 2], beta)
    with pytest.raises(ValueError, match='beta'):
        CBFocalLoss(num_classes=2, beta=beta)


def test_zero_count_policies():
    with pytest.warns(UserWarning, match='cat, dog'):
        w = class_balanced_weights([0, 10, 0, 100], 0.99, class_names=['cat', 'a', 'dog', 'b'])
    seen = by_hand([10, 100], 0.99)
    assert w[0] == w[2] == w.max()
    # the rarest seen class' weight, then the four normalised to sum to 4
    expected = [seen[0], seen[0], seen[0], seen[1]]
    expected = [x * 4 / sum(expected) for x in expected]
    assert w.tolist() == pytest.approx([expected[0], expected[1], expected[2], expected[3]],
                                       rel=1e-6)
    with pytest.raises(ValueError, match='dog'):
        class_balanced_weights([4, 10, 0], 0.99, 'error', class_names=['a', 'b', 'dog'])
    with pytest.raises(ValueError, match='all zero'):
        class_balanced_weights([0, 0], 0.99)
    with pytest.raises(ValueError, match='non-negative'):
        class_balanced_weights([-1, 3], 0.99)


def cb_batch(seed=0, c=5):
    logits, labels, w = make_cls_batch(n=200, c=c, seed=seed)
    counts = [3, 40, 500, 7, 1200][:c]
    return logits, labels, w, counts


def anchor_weights_by_hand(labels, counts, beta):
    table = torch.tensor(by_hand(counts, beta) + [1.0])  # background anchors: weight 1
    return table[labels]


@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
def test_focal_type_equals_focal_loss_times_class_weight(reduction):
    logits, labels, w, counts = cb_batch()
    avg = None if reduction == 'sum' else 13.0
    loss = CBFocalLoss(num_classes=5, class_counts=counts, beta=0.999, gamma=1.5)
    aw = anchor_weights_by_hand(labels, counts, 0.999) * w
    one_hot = F.one_hot(labels, 6)[:, :5].float()

    def reference(x):
        out = tv_sigmoid_focal_loss(x, one_hot, alpha=-1, gamma=1.5) * aw[:, None]
        return {'none': out, 'sum': out.sum(), 'mean': out.sum() / (13.0 + 1.1920929e-07)}[
            reduction]

    v, g = grads(loss, logits, labels, w, avg_factor=avg, reduction_override=reduction)
    v_ref, g_ref = grads(reference, logits)
    torch.testing.assert_close(v, v_ref, **TOL)
    torch.testing.assert_close(g, g_ref, **TOL)


def test_focal_type_with_alpha_equals_mmdet_focal_with_class_weights():
    logits, labels, w, counts = cb_batch(seed=1)
    loss = CBFocalLoss(num_classes=5, class_counts=counts, beta=0.99, gamma=2.0, alpha=0.25)
    aw = anchor_weights_by_hand(labels, counts, 0.99)
    v, g = grads(loss, logits, labels, avg_factor=9.0)
    v_ref, g_ref = grads(MMDetFocalLoss(), logits, labels, aw, avg_factor=9.0)
    torch.testing.assert_close(v, v_ref, **TOL)
    torch.testing.assert_close(g, g_ref, **TOL)


def test_sigmoid_type_equals_weighted_bce():
    logits, labels, w, counts = cb_batch(seed=2)
    loss = CBFocalLoss(num_classes=5, class_counts=counts, beta=0.9999, loss_type='sigmoid')
    aw = anchor_weights_by_hand(labels, counts, 0.9999)
    one_hot = F.one_hot(labels, 6)[:, :5].float()
    v, g = grads(loss, logits, labels, avg_factor=20.0)
    v_ref, g_ref = grads(
        lambda x: F.binary_cross_entropy_with_logits(x, one_hot, aw[:, None], reduction='sum') /
        (20.0 + 1.1920929e-07), logits)
    torch.testing.assert_close(v, v_ref, **TOL)
    torch.testing.assert_close(g, g_ref, **TOL)


@pytest.mark.parametrize('background', [True, False])
def test_softmax_type_equals_class_weighted_cross_entropy(background):
    logits, labels, w, counts = cb_batch(seed=3)
    if background:
        logits = torch.cat([logits, torch.randn(len(logits), 1)], 1)  # column C = background
    else:
        labels = labels.clamp(max=4)
    loss = CBFocalLoss(num_classes=5, class_counts=counts, beta=0.999, loss_type='softmax',
                       use_sigmoid=False)
    table = torch.tensor(by_hand(counts, 0.999) + [1.0])[:logits.shape[1]]
    v, g = grads(loss, logits, labels, w, reduction_override='none')
    v_ref, g_ref = grads(lambda x: F.cross_entropy(x, labels, table, reduction='none') * w, logits)
    torch.testing.assert_close(v, v_ref, **TOL)
    torch.testing.assert_close(g, g_ref, **TOL)


@pytest.mark.parametrize('device', cpu_and_cuda())
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('reduction', ['none', 'mean'])
def test_dense_focal_type_equals_mmdet_focal_with_class_weights(device, dtype, reduction):
    # mmdet's FocalLoss test shape (B, C, W, H), labels (B, W, H) with C = background
    g = torch.Generator().manual_seed(6)
    counts = [3, 40, 500, 7, 1200]
    logits = (torch.randn(3, 5, 40, 40, generator=g) * 3).to(dtype).to(device)
    labels = torch.randint(0, 6, (3, 40, 40), generator=g).to(device)
    one_hot = F.one_hot(labels, 6)[..., :5].permute(0, 3, 1, 2)
    aw = anchor_weights_by_hand(labels.cpu(), counts, 0.99).to(dtype).to(device)
    loss = CBFocalLoss(num_classes=5, class_counts=counts, beta=0.99, gamma=2.0,
                       alpha=0.25).to(device)
    kwargs = dict(avg_factor=11.0, reduction_override=reduction)
    v_ref, g_ref = grads(MMDetFocalLoss(), logits, one_hot,
                         aw[:, None].expand_as(logits).contiguous(), **kwargs)
    for target in (labels, one_hot):
        v, g = grads(loss, logits, target, **kwargs)
        assert v.shape == v_ref.shape
        torch.testing.assert_close(v, v_ref, **TOL)
        torch.testing.assert_close(g, g_ref, **TOL)


@pytest.mark.parametrize('device', cpu_and_cuda())
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_dense_softmax_type_equals_class_weighted_cross_entropy(device, dtype):
    g = torch.Generator().manual_seed(7)
    counts = [3, 40, 500, 7, 1200]
    logits = torch.randn(2, 6, 9, 11, generator=g).to(dtype).to(device)  # C + 1 = 6 columns
    labels = torch.randint(0, 6, (2, 9, 11), generator=g).to(device)
    w = (torch.rand(2, 9, 11, generator=g) + 0.5).to(dtype).to(device)
    table = torch.tensor(by_hand(counts, 0.999) + [1.0], dtype=dtype, device=device)
    loss = CBFocalLoss(num_classes=5, class_counts=counts, beta=0.999, loss_type='softmax',
                       use_sigmoid=False).to(device)
    v, g = grads(loss, logits, labels, w, reduction_override='none')
    # torch's cross_entropy takes (B, C, *) natively
    v_ref, g_ref = grads(lambda x: F.cross_entropy(x, labels, table, reduction='none') * w,
                         logits)
    assert v.shape == (2, 9, 11)
    torch.testing.assert_close(v, v_ref, **TOL)
    torch.testing.assert_close(g, g_ref, **TOL)


def test_one_hot_targets_give_the_same_loss():
    logits, labels, w, counts = cb_batch(seed=4)
    loss = CBFocalLoss(num_classes=5, class_counts=counts)
    one_hot = F.one_hot(labels, 6)[:, :5]
    expected = loss(logits, labels, w, avg_factor=4.0)
    for target in (one_hot, one_hot.bool(), one_hot.float()):
        torch.testing.assert_close(loss(logits, target, w, avg_factor=4.0), expected, **TOL)


def test_configuration_errors():
    with pytest.raises(ValueError, match='loss_type'):
        CBFocalLoss(num_classes=3, loss_type='ce')
    with pytest.raises(ValueError, match='use_sigmoid'):
        CBFocalLoss(num_classes=3, loss_type='focal', use_sigmoid=False)
    with pytest.raises(ValueError, match='class_counts'):
        CBFocalLoss(num_classes=3, class_counts=[1, 2])
    with pytest.raises(ValueError, match='zero_count_policy'):
        CBFocalLoss(num_classes=3, zero_count_policy='skip')
    loss = CBFocalLoss(num_classes=3)
    with pytest.raises(RuntimeError, match='ClassCountsHook'):
        loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))
    loss.set_class_counts([5, 6, 7])
    # a head built without use_sigmoid=True outputs C + 1 columns
    with pytest.raises(ValueError, match='use_sigmoid=True'):
        loss(torch.randn(4, 4), torch.tensor([0, 1, 2, 3]))
    softmax = CBFocalLoss(num_classes=3, class_counts=[5, 6, 7], loss_type='softmax')
    with pytest.raises(ValueError, match=r'target holds class indices outside \[0, 2\]'):
        softmax(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))


def test_counts_are_kept_by_state_dict():
    loss = CBFocalLoss(num_classes=5, class_counts=[3, 40, 500, 7, 1200], beta=0.99)
    logits, labels, w, _ = cb_batch()
    state = loss.state_dict()
    assert state['class_counts'].tolist() == [3, 40, 500, 7, 1200]
    assert 'class_weights' not in state  # derived, so it cannot disagree with the counts
    fresh = CBFocalLoss(num_classes=5, beta=0.99)
    fresh.load_state_dict(state)
    assert fresh.has_counts
    torch.testing.assert_close(fresh(logits, labels, w), loss(logits, labels, w), rtol=0, atol=0)
    # half() must not turn large counts into inf
    big = CBFocalLoss(num_classes=2, class_counts=[100000, 3]).half()
    assert big.class_counts.tolist() == [100000, 3]


@pytest.mark.parametrize('loss_type', ['focal', 'sigmoid', 'softmax'])
def test_gradgradcheck(loss_type):
    logits, labels, w = make_cls_batch(n=10, c=3, seed=5, dtype=torch.float64)
    if loss_type == 'softmax':
        logits = torch.cat([logits, torch.zeros(10, 1, dtype=torch.float64)], 1)
    loss = CBFocalLoss(num_classes=3, class_counts=[2, 30, 400], beta=0.99, loss_type=loss_type,
                       gamma=0.5)
    x = logits.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda x: loss(x, labels, w, avg_factor=2.0), (x, ))
