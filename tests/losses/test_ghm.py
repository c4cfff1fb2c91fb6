"""GHMC / GHMR against mmdet's implementation, the paper's formula evaluated by hand, and the
properties mmdet lacks (per-level moving averages, real weights, frozen statistics, DDP sync)."""
import functools
import math
import os

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from mmdet.models.losses import GHMC as MMDetGHMC
from mmdet.models.losses import GHMR as MMDetGHMR
from torch.overrides import TorchFunctionMode

from loss_testing import grads, make_cls_batch
from mmreweight import losses
from mmreweight.losses import count_fpn_levels, frozen_loss_statistics, ghm_edges, gradient_density
from mmreweight.losses.gradient_density import floor_binning_is_exact
from mmreweight.testing.devices import cpu_and_cuda

# The paper's losses from the first call (no warm-up, GHM-R's mu = 0.02): the mode that equals
# mmdet's. The warm-up and mu='auto' are tested in test_ghm_warmup.py.
GHMC = functools.partial(losses.GHMC, paper_exact=True)
GHMR = functools.partial(losses.GHMR, paper_exact=True)

TOL = dict(rtol=1e-6, atol=1e-6)


def make_reg_batch(n=200, seed=0, pos_frac=0.3):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, 4, generator=g) * 0.05
    target = torch.randn(n, 4, generator=g) * 0.05
    weight = (torch.rand(n, 1, generator=g) < pos_frac).float().expand(n, 4).contiguous()
    return pred, target, weight


def mask_weights(w, seed=0):
    """0/1 label weights: about 10% of the anchors ignored."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(w.shape, generator=g) > 0.1).float()


def compare(ours, ref, pred, *args, reduction='mean', ref_reduction=None, **kwargs):
    """Value and gradient of ours (``reduction``) vs ref (``ref_reduction``, summed if 'none')."""
    v, g = grads(lambda x: ours(x, *args, reduction_override=reduction, **kwargs), pred)
    ref_reduction = ref_reduction or reduction
    v_ref, g_ref = grads(lambda x: ref(x, *args, reduction_override=ref_reduction, **kwargs), pred)
    if ref_reduction == 'none' and reduction == 'sum':
        v_ref = v_ref.sum()
    torch.testing.assert_close(v, v_ref, **TOL)
    torch.testing.assert_close(g, g_ref, **TOL)


# ---------------------------------------------------------------- exactness against mmdet
@pytest.mark.parametrize('reduction,ref_reduction', [('none', 'none'), ('mean', 'mean'),
                                                     ('sum', 'none')])
@pytest.mark.parametrize('momentum', [0.0, 0.75])
def test_ghmc_matches_mmdet_over_a_sequence_of_calls(reduction, ref_reduction, momentum):
    ours = GHMC(bins=30, momentum=momentum, loss_weight=2.0)
    ref = MMDetGHMC(bins=30, momentum=momentum, loss_weight=2.0)
    for step in range(4):
        logits, labels, w = make_cls_batch(n=400, c=6, seed=step)
        compare(ours, ref, logits, labels, mask_weights(w, step), reduction=reduction,
                ref_reduction=ref_reduction)
        if momentum:
            # both forwards of compare() updated the averages, so each saw the same history
            torch.testing.assert_close(ours.acc_sum[0], ref.acc_sum, rtol=1e-6, atol=0)


def test_ghmc_one_hot_targets_and_no_weights():
    logits, labels, w = make_cls_batch(seed=5)
    one_hot = F.one_hot(labels, logits.shape[1] + 1)[:, :-1]
    compare(GHMC(bins=10), MMDetGHMC(bins=10), logits, one_hot.float(), mask_weights(one_hot))
    # mmdet needs a label_weight; ours treats weight=None (FCOS' call) as all ones
    v = GHMC(bins=10)(logits, labels)
    v_ref = MMDetGHMC(bins=10)(logits, labels, torch.ones(len(labels)))
    torch.testing.assert_close(v, v_ref, **TOL)


@pytest.mark.parametrize('reduction,ref_reduction', [('none', 'none'), ('mean', 'mean'),
                                                     ('sum', 'none')])
@pytest.mark.parametrize('momentum', [0.0, 0.7])
def test_ghmr_matches_mmdet_over_a_sequence_of_calls(reduction, ref_reduction, momentum):
    ours = GHMR(mu=0.02, bins=10, momentum=momentum, loss_weight=10.0)
    ref = MMDetGHMR(mu=0.02, bins=10, momentum=momentum, loss_weight=10.0)
    for step in range(4):
        pred, target, weight = make_reg_batch(seed=step)
        compare(ours, ref, pred, target, weight, reduction=reduction, ref_reduction=ref_reduction)
    if momentum:
        torch.testing.assert_close(ours.acc_sum[0], ref.acc_sum, rtol=1e-6, atol=0)


@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
@pytest.mark.parametrize('weight_shape', ['(N,4)', '(N,)'])
@pytest.mark.parametrize('mode', ['checked', 'unchecked_negative', 'mmdet_compat'])
def test_ghmr_dropping_ignored_elements_changes_nothing(reduction, weight_shape, mode):
    """The CPU path (only elements of weight != 0) and the full-size path (accelerators) give the
    same values, gradients and moving averages, over a sequence of calls with real weights; also
    unchecked negative weights (kept on the CPU path, not counted by either) and mmdet_compat."""
    kwargs = dict(check_values=mode != 'unchecked_negative', mmdet_compat=mode == 'mmdet_compat')
    losses = {drop: GHMR(momentum=0.7, drop_ignored=drop, **kwargs) for drop in (True, False)}
    for step in range(3):
        pred, target, mask = make_reg_batch(seed=step, pos_frac=0.05)
        w = mask * torch.rand(mask.shape, generator=torch.Generator().manual_seed(step))
        if mode == 'unchecked_negative':
            first = w.view(-1).nonzero()[:5, 0]
            w.view(-1)[first] *= -1
        if weight_shape == '(N,)':
            w = w[:, 0].contiguous()
        out = {}
        for drop, loss in losses.items():
            x = pred.clone().requires_grad_(True)
            value = loss(x, target, w, reduction_override=reduction)
            value.sum().backward()
            out[drop] = value, x.grad
        assert out[True][0].shape == out[False][0].shape
        torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-6, atol=0)
        torch.testing.assert_close(out[True][1], out[False][1], rtol=1e-6, atol=0)
        assert float(out[False][1].abs().sum()) > 0
    torch.testing.assert_close(losses[True].acc_sum, losses[False].acc_sum, rtol=0, atol=0)


@pytest.mark.parametrize('loss', ['ghmc', 'ghmr'])
def test_real_weights_multiply_the_loss_and_mmdet_compat_masks(loss):
    if loss == 'ghmc':
        pred, labels, w = make_cls_batch(seed=7)
        args, ours, compat, ref = (labels, ), GHMC(bins=30), GHMC(bins=30, mmdet_compat=True), \
            MMDetGHMC(bins=30)
        w_ref = w[:, None]
    else:
        pred, target, mask = make_reg_batch(seed=7)
        w = mask * torch.rand(mask.shape, generator=torch.Generator().manual_seed(1)) * 2
        args, ours, compat, ref = (target, ), GHMR(), GHMR(mmdet_compat=True), MMDetGHMR()
        w_ref = w
    compare(compat, ref, pred, *args, w)
    # ours = mmdet's per-element loss times the weight (the histogram still counts weight > 0)
    v = ours(pred, *args, w, reduction_override='none')
    mask = (w > 0).float()
    v_ref = ref(pred, *args, mask, reduction_override='none') * w_ref
    torch.testing.assert_close(v, v_ref, **TOL)


# ---------------------------------------------------------------- the paper's formula by hand
def test_ghmc_by_hand_is_the_mean_over_bins_of_the_mean_loss_per_bin():
    # bins=2: g = |sigmoid(x) - t| < 0.5 is "easy", >= 0.5 "hard"
    x = [[2.0, -1.0], [0.5, 3.0]]
    t = [[1, 0], [0, 0]]
    bce = [[-math.log(1 / (1 + math.exp(-x[i][j]))) if t[i][j] else
            -math.log(1 - 1 / (1 + math.exp(-x[i][j]))) for j in range(2)] for i in range(2)]
    g = [[abs(1 / (1 + math.exp(-x[i][j])) - t[i][j]) for j in range(2)] for i in range(2)]
    easy = [bce[i][j] for i in range(2) for j in range(2) if g[i][j] < 0.5]
    hard = [bce[i][j] for i in range(2) for j in range(2) if g[i][j] >= 0.5]
    assert easy and hard
    expected = (sum(easy) / len(easy) + sum(hard) / len(hard)) / 2
    loss = GHMC(bins=2)(torch.tensor(x, dtype=torch.float64), torch.tensor([0, 2]))
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    # with momentum m the first call divides each bin by (1 - m) * count:
    m = 0.5
    first = (sum(easy) / ((1 - m) * len(easy)) + sum(hard) / ((1 - m) * len(hard))) / 2
    loss = GHMC(bins=2, momentum=m)(torch.tensor(x, dtype=torch.float64), torch.tensor([0, 2]))
    assert loss.item() == pytest.approx(first, rel=1e-6)


def test_ghmc_alpha_balances_positives_and_negatives_by_hand():
    """alpha=a multiplies the positives' harmonizing weights by a and the negatives' by 1 - a,
    then rescales all of them to the same sum N."""
    x = [[2.0, -1.0, 0.3], [0.5, 3.0, -2.0]]
    t = [[1, 0, 0], [0, 0, 1]]
    p = [[1 / (1 + math.exp(-v)) for v in row] for row in x]
    bce = [[-math.log(p[i][j]) if t[i][j] else -math.log(1 - p[i][j]) for j in range(3)]
           for i in range(2)]
    g = [[abs(p[i][j] - t[i][j]) for j in range(3)] for i in range(2)]
    cells = [(i, j) for i in range(2) for j in range(3)]
    count = {b: sum(1 for i, j in cells if (g[i][j] >= 0.5) == b) for b in (False, True)}
    beta = {(i, j): 6 / (2 * count[g[i][j] >= 0.5]) for i, j in cells}  # N / (n S_b)
    balance = {(i, j): 0.25 if t[i][j] else 0.75 for i, j in cells}
    scale = sum(beta.values()) / sum(beta[c] * balance[c] for c in cells)
    expected = sum(beta[c] * balance[c] * scale * bce[c[0]][c[1]] for c in cells) / 6
    loss = GHMC(bins=2, alpha=0.25)(torch.tensor(x, dtype=torch.float64), torch.tensor([0, 2]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    plain = GHMC(bins=2)(torch.tensor(x, dtype=torch.float64), torch.tensor([0, 2]))
    assert loss.item() != pytest.approx(plain.item(), rel=1e-3)


def test_ghmr_by_hand():
    mu, d = 0.02, [0.001, -0.003, 0.5, 0.01]
    asl1 = [math.sqrt(v * v + mu * mu) - mu for v in d]
    g = [abs(v) / math.sqrt(v * v + mu * mu) for v in d]  # 0.05, 0.15, 0.9992, 0.447
    bins = [min(int(v * 10), 9) for v in g]
    per_bin = {}
    for b, loss in zip(bins, asl1):
        per_bin.setdefault(b, []).append(loss)
    expected = sum(sum(v) / len(v) for v in per_bin.values()) / len(per_bin)
    pred = torch.tensor([d], dtype=torch.float64)
    loss = GHMR(mu=mu, bins=10)(pred, torch.zeros_like(pred), torch.ones_like(pred))
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_edges_and_floor_binning_match_comparisons():
    edges = ghm_edges(30, 1 + 1e-6)
    torch.testing.assert_close(edges, MMDetGHMC(bins=30).edges, rtol=0, atol=0)
    for bins in (10, 30, 20):
        edges = ghm_edges(bins, 1 + 1e-6)
        g = torch.cat([torch.rand(10000), edges[:-1], torch.nextafter(edges[1:-1], edges[:-2]),
                       torch.tensor([1.0])])
        ref = torch.stack([(g >= edges[i]) & (g < edges[i + 1]) for i in range(bins)]).sum(1)
        for floor_exact in {False, floor_binning_is_exact(edges)}:
            slot, counts = gradient_density(g, None, edges, floor_exact)
            assert torch.equal(counts, ref.float())


# ---------------------------------------------------------------- state: levels, freezing, ckpt
def level_batches(seed=0):
    """Five FPN levels of very different sizes, like a head's per-level calls, 0/1 weights."""
    batches = [make_cls_batch(n=n, c=4, seed=seed + i) for i, n in enumerate([400, 100, 25, 9, 4])]
    return [(logits, labels, mask_weights(w, seed)) for logits, labels, w in batches]


def test_levels_keep_their_own_moving_average():
    ours = GHMC(bins=10, momentum=0.75, num_levels=5)
    per_level_refs = [MMDetGHMC(bins=10, momentum=0.75) for _ in range(5)]
    for it in range(3):
        with count_fpn_levels(ours):
            for (logits, labels, w), ref in zip(level_batches(10 * it), per_level_refs):
                torch.testing.assert_close(ours(logits, labels, w), ref(logits, labels, w), **TOL)
    for level, ref in enumerate(per_level_refs):
        torch.testing.assert_close(ours.acc_sum[level], ref.acc_sum, rtol=1e-6, atol=0)


def test_outside_count_fpn_levels_all_calls_share_row_0_like_mmdet():
    ours, ref = GHMC(bins=10, momentum=0.75), MMDetGHMC(bins=10, momentum=0.75)
    for logits, labels, w in level_batches():
        torch.testing.assert_close(ours(logits, labels, w), ref(logits, labels, w), **TOL)
    torch.testing.assert_close(ours.acc_sum[0], ref.acc_sum, rtol=1e-6, atol=0)
    assert not ours.acc_sum[1:].any()


def test_count_fpn_levels_rejects_more_calls_than_levels_and_restores():
    loss = GHMC(momentum=0.5, num_levels=2)
    logits, labels, w = make_cls_batch(n=10)
    with pytest.raises(RuntimeError, match='num_levels'):
        with count_fpn_levels(loss):
            for _ in range(3):
                loss(logits, labels, w)
    assert loss._fpn_level is None


def test_frozen_statistics_give_the_same_loss_and_leave_averages_untouched():
    loss = GHMC(bins=10, momentum=0.75)
    head = torch.nn.ModuleDict(dict(loss_cls=loss, loss_bbox=GHMR(momentum=0.7)))
    warmup, batch = make_cls_batch(seed=0), make_cls_batch(seed=1)
    loss(*warmup)
    before = loss.acc_sum.clone()
    with frozen_loss_statistics(head):
        assert not loss.update_stats and not head['loss_bbox'].update_stats
        frozen = loss(*batch)
    assert torch.equal(loss.acc_sum, before)
    assert loss.update_stats
    torch.testing.assert_close(loss(*batch), frozen, rtol=0, atol=0)  # the same weights
    assert not torch.equal(loss.acc_sum, before)


def test_state_dict_round_trip_and_mmdet_checkpoint():
    ours = GHMC(bins=10, momentum=0.75)
    with count_fpn_levels(ours):
        for logits, labels, w in level_batches():
            ours(logits, labels, w)
    state = ours.state_dict()
    assert state['acc_sum'].shape == (5, 10)
    fresh = GHMC(bins=10, momentum=0.75)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.acc_sum, ours.acc_sum)
    # an mmdet checkpoint holds a single (bins,) row: every level starts from it
    ref = MMDetGHMC(bins=10, momentum=0.75)
    ref(*make_cls_batch())
    fresh.load_state_dict(ref.state_dict())
    assert torch.equal(fresh.acc_sum, ref.acc_sum.expand(5, 10))


# ---------------------------------------------------------------- derivatives and precision
def test_gradgradcheck():
    logits, labels, w = make_cls_batch(n=10, c=3, seed=3, dtype=torch.float64)
    ghmc = GHMC(bins=10, momentum=0.75)
    x = logits.clone().requires_grad_(True)
    with frozen_loss_statistics(ghmc):  # gradcheck's many forwards must see the same weights
        assert torch.autograd.gradgradcheck(lambda x: ghmc(x, labels, w), (x, ))
    pred, target, weight = make_reg_batch(n=8, seed=3)
    ghmr = GHMR(bins=10)
    p = pred.double().requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda p: ghmr(p, target.double(), weight.double()),
                                        (p, ))
    assert ghmc.twice_differentiable and ghmr.twice_differentiable


def test_fp16_weights_never_overflow():
    # 80 000 elements with a single one in its bin: tot / num_in_bin = 8e4 > 65504 (fp16 max)
    logits = torch.full((1000, 80), -8.0)
    logits[0, 0] = 8.0
    labels = torch.full((1000, ), 80)
    ours = GHMC(bins=10)(logits.half(), labels)
    assert torch.isfinite(ours) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, GHMC(bins=10)(logits.half().float(), labels))
    mmdet_fp16 = MMDetGHMC(bins=10)(logits.half(), labels, torch.ones(1000).half(),
                                    reduction_override='none')
    assert not torch.isfinite(mmdet_fp16).all()  # the overflow this guards against


# ---------------------------------------------------------------- no host syncs
class SyncRecorder(TorchFunctionMode):
    """Records tensor calls that copy a device value to the host (a sync on GPU)."""
    SYNCS = {'item', 'tolist', '__bool__', '__float__', '__int__', '__index__', 'nonzero',
             'masked_select', 'bincount', 'unique', 'cpu', 'numpy'}

    def __init__(self):
        super().__init__()
        self.syncs = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, '__name__', '')
        if name in self.SYNCS or (name == '__getitem__' and any(
                isinstance(a, torch.Tensor) and a.dtype == torch.bool for a in args[1:])):
            self.syncs.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize('bins', [30, 20])  # floor and bucketize binning
def test_ghm_forward_backward_reads_nothing_back(bins):
    logits, labels, w = make_cls_batch()
    pred, target, weight = make_reg_batch()
    ghmc = GHMC(bins=bins, momentum=0.75, check_values=False)
    ghmr = GHMR(momentum=0.7, check_values=False, drop_ignored=False)  # the accelerator path
    x = logits.requires_grad_(True)
    with SyncRecorder() as rec:
        with count_fpn_levels(ghmc, ghmr):
            loss = ghmc(x, labels, w, avg_factor=3.0) + ghmr(pred, target, weight)
        loss.backward()
    assert rec.syncs == []
    with SyncRecorder() as rec:  # the default value checks cost exactly one copy
        ghmc.check_values = True
        ghmc(x, labels, w)
    assert rec.syncs == ['tolist']


# ---------------------------------------------------------------- DDP
def _ddp_worker(rank, world, init_file, queue):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world)
    logits, labels, w = make_cls_batch(n=400, seed=11)
    loss = GHMC(bins=10, momentum=0.75)
    shard = slice(rank * 200, (rank + 1) * 200)
    for _ in range(2):
        x = logits[shard].clone().requires_grad_(True)
        value = loss(x, labels[shard], w[shard])
        value.backward()
    # plain lists: tensors would travel as shared-memory handles that die with this process
    queue.put((rank, value.item(), x.grad.tolist(), loss.acc_sum.tolist()))
    dist.destroy_process_group()


def test_sync_stats_under_ddp_equals_one_process_on_the_whole_batch(tmp_path):
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, str(tmp_path / 'pg'), queue))
             for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    logits, labels, w = make_cls_batch(n=400, seed=11)
    single = GHMC(bins=10, momentum=0.75)
    for _ in range(2):
        x = logits.clone().requires_grad_(True)
        value = single(x, labels, w)
        value.backward()
    # DDP averages the ranks' gradients and losses
    mean_value = sum(r[1] for r in results) / 2
    assert mean_value == pytest.approx(value.item(), rel=1e-5)
    torch.testing.assert_close(torch.tensor(results[0][2] + results[1][2]) / 2, x.grad, **TOL)
    for r in results:
        torch.testing.assert_close(torch.tensor(r[3]), single.acc_sum, rtol=1e-6, atol=0)
    assert 'RANK' not in os.environ  # the workers did not leak into this process


@pytest.mark.parametrize('device', cpu_and_cuda())
def test_ghmr_default_path_on_each_device_matches_the_cpu_path(device):
    """``drop_ignored=None`` picks the path by device (only the weighted elements on the CPU,
    full size on accelerators); on every device the values, gradients and moving averages equal
    the CPU path's, over a sequence of calls."""
    on_device, on_cpu = GHMR(momentum=0.7).to(device), GHMR(momentum=0.7, drop_ignored=True)
    for step in range(3):
        pred, target, mask = make_reg_batch(seed=step, pos_frac=0.05)
        w = mask * torch.rand(mask.shape, generator=torch.Generator().manual_seed(step))
        out = []
        for loss, dev in ((on_device, device), (on_cpu, 'cpu')):
            x = pred.clone().to(dev).requires_grad_(True)
            value = loss(x, target.to(dev), w.to(dev), avg_factor=7.0)
            value.backward()
            out.append((value.detach().cpu(), x.grad.cpu()))
        torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(on_device.acc_sum.cpu(), on_cpu.acc_sum, rtol=1e-6, atol=0)
