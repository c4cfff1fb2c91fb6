"""MentorNet curricula, percentile moving average and MentorNetWeighter vs hand-computed values."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from mmreweight.testing.distributed import free_port, gloo_process_group
from mmreweight.registry import MODELS
from mmreweight.weighting.base import AnchorLossContext
from mmreweight.weighting.mentornet import MentorNetWeighter
from mmreweight.weighting.mentornet.curricula import (focal, hard_example_mining, make_curriculum,
                                                      mentornet_pd, progress_to_epoch,
                                                      self_paced, spcl_linear)
from mmreweight.weighting.mentornet.inputs import PercentileEMA, percentile_linear

C = 3  # foreground classes; label C = background

REPO = Path(__file__).resolve().parents[2]


def make_ctx(loss, labels, label_weights=None, progress=0.5, **extras):
    loss = torch.as_tensor(loss, dtype=torch.float32)
    labels = torch.as_tensor(labels, dtype=torch.long)
    lw = (torch.ones_like(loss) if label_weights is None
          else torch.as_tensor(label_weights, dtype=torch.float32))
    return AnchorLossContext(loss=loss.clone().requires_grad_(), logits=torch.zeros(len(loss), C),
                             labels=labels, label_weights=lw, num_classes=C,
                             avg_factor=float((labels < C).sum()), progress=progress,
                             extras=extras)


# ---------------------------------------------------------------------------- curricula
L = torch.tensor([0.5, 1.0, 2.0, 0.0])
D = torch.tensor([-0.3, 0.0, 0.4, 1.5])
Y = torch.tensor([0., 1., 0., 1.])
E = torch.tensor([50., 50., 50., 50.])


def test_self_paced_hand_values():
    assert self_paced(L, D, Y, E).tolist() == [1, 1, 0, 0]  # 1[diff <= 0]


def test_hard_example_mining_keeps_positives():
    # 1[diff >= 0] or y=1: anchor 0 is an easy negative, anchor 3 a positive with diff > 0
    assert hard_example_mining(L, D, Y, E).tolist() == [0, 1, 1, 1]
    assert hard_example_mining(L, D, torch.ones(4), E).tolist() == [1, 1, 1, 1]


def test_focal_hand_values():
    # (1 - e^-l)^2: (1-0.60653066)^2, (1-0.36787944)^2, (1-0.13533528)^2, 0
    expected = [0.15481812, 0.39957640, 0.74764507, 0.0]
    assert focal(L, D, Y, E).tolist() == pytest.approx(expected, abs=1e-6)
    assert focal(L, D, Y, E, gamma=1.0).tolist() == pytest.approx(
        [0.39346934, 0.63212056, 0.86466472, 0.0], abs=1e-6)


def test_spcl_linear_hand_values():
    # clip(1 - diff/gamma, 0, 1)
    assert spcl_linear(L, D, Y, E).tolist() == pytest.approx([1.0, 1.0, 0.6, 0.0])
    assert spcl_linear(L, D, Y, E, gamma=2.0).tolist() == pytest.approx([1.0, 1.0, 0.8, 0.25])
    with pytest.raises(ValueError):
        spcl_linear(L, D, Y, E, gamma=0.0)


def test_pd_schedule_boundaries():
    diff = torch.tensor([0.4, -0.3])
    one = lambda e: mentornet_pd(torch.ones(2), diff, torch.zeros(2),  # noqa: E731
                                 torch.full((2,), float(e))).tolist()
    assert one(0) == [1, 1] and one(18) == [1, 1]            # burn-in: epoch <= 18
    assert one(19) == [0, 1] and one(89) == [0, 1]           # self-paced
    assert one(90) == pytest.approx([0.6, 1]) and one(99) == pytest.approx([0.6, 1])  # SPCL


def test_progress_to_epoch():
    assert [progress_to_epoch(p) for p in (0.0, 0.18, 0.1899, 0.19, 0.29, 0.58, 0.9, 1.0)] == \
        [0, 18, 18, 19, 29, 58, 90, 99]
    with pytest.raises(ValueError):
        progress_to_epoch(1.5)


def test_unknown_curriculum_is_named():
    with pytest.raises(ValueError, match='bogus'):
        make_curriculum('bogus')


# ---------------------------------------------------------------------------- percentile EMA
@pytest.mark.parametrize('n', [1, 2, 7, 1000])
@pytest.mark.parametrize('q', [0.0, 0.3, 0.7, 0.75, 1.0])
def test_percentile_matches_numpy(n, q):
    x = np.random.default_rng(n).lognormal(size=n).astype(np.float32)
    assert float(percentile_linear(torch.from_numpy(x), q)) == pytest.approx(
        float(np.percentile(x.astype(np.float64), 100 * q)), rel=1e-6)


def test_ema_recursion_by_hand_per_group():
    ema = PercentileEMA(percentile=0.7, decay=0.5)

    def step(neg, pos):
        loss = torch.tensor(neg + pos, dtype=torch.float32)
        is_pos = torch.tensor([False] * len(neg) + [True] * len(pos))
        ema.update(ema.batch_percentiles(loss, is_pos, torch.ones_like(is_pos)))
        return ema.value.tolist()

    # batch 1: negatives 0..10 -> h = 0.7*10 = 7 -> 7; positives [1, 3] -> 1 + 0.7*2 = 2.4
    assert step(list(range(11)), [1, 3]) == pytest.approx([7.0, 2.4])
    # batch 2: [2, 4, 6] -> 4 + 0.4*2 = 4.8, EMA 0.5*7 + 0.5*4.8 = 5.9; [10] -> 0.5*2.4 + 5 = 6.2
    assert step([2, 4, 6], [10]) == pytest.approx([5.9, 6.2])
    # batch 3: no positives -> that group is left alone; negatives [1, 1, 1] -> 0.5*5.9 + 0.5
    assert step([1, 1, 1], []) == pytest.approx([3.45, 6.2])


def test_percentile_ignores_invalid_anchors():
    w = MentorNetWeighter(curriculum='self_paced', burn_in=None)
    # the ignored anchor's huge loss must not move the negatives' percentile (0.7 of 0..10 = 7)
    loss = list(range(11)) + [1000.0, 1.0, 3.0]
    labels = [C] * 12 + [0, 2]
    lw = [1.0] * 11 + [0.0, 1.0, 1.0]
    out = w(make_ctx(loss, labels, lw))
    assert w.pct_ema.value.tolist() == pytest.approx([7.0, 2.4])
    assert out[11] == 0


def test_weighter_self_paced_weights_by_hand():
    w = MentorNetWeighter(curriculum='self_paced', burn_in=None)
    w(make_ctx(list(range(11)) + [1.0, 3.0], [C] * 11 + [0, 1]))  # lambda = (7, 2.4)
    # batch 2: lambda_neg = 5.9 -> [2, 4, 6] -> v = [1, 1, 0]; lambda_pos = 6.2 -> [10] -> v = 0
    out = w(make_ctx([2.0, 4.0, 6.0, 10.0], [C, C, C, 2]))
    # mean one over the 4 valid anchors: v * 4 / 2
    assert out.tolist() == pytest.approx([2.0, 2.0, 0.0, 0.0])
    assert not out.requires_grad
    assert w.log_scalars()['mentornet_zero_frac'] == pytest.approx(0.5)
    assert w.log_scalars()['mentornet_pct_ema_neg'] == pytest.approx(5.9)


def test_threshold_makes_soft_weights_hard():
    # focal curriculum (1 - e^-l)^2: [0.155, 0.400, 0.748, 0.0] for l = [0.5, 1, 2, 0]
    soft = MentorNetWeighter(curriculum='focal', burn_in=None)
    hard = MentorNetWeighter(curriculum='focal', burn_in=None, threshold=0.35)
    ctx = make_ctx([0.5, 1.0, 2.0, 0.0], [C, 0, 1, C])
    # mean one over the 4 anchors: v * 4 / 1.30205
    assert soft(ctx).tolist() == pytest.approx([0.4756, 1.2275, 2.2968, 0.0], abs=1e-4)
    assert hard(ctx).tolist() == [0.0, 2.0, 2.0, 0.0]  # 1[v >= 0.35] = [0, 1, 1, 0], mean one
    burn = MentorNetWeighter(curriculum='focal', burn_in=0.18, threshold=0.35)
    assert burn(make_ctx([0.5, 1.0, 2.0, 0.0], [C, 0, 1, C], progress=0.1)).tolist() == \
        [1.0, 1.0, 1.0, 1.0]  # burn-in still overrides
    with pytest.raises(ValueError, match='threshold'):
        MentorNetWeighter(curriculum='focal', threshold=1.5)


def test_foreground_weights_by_hand():
    """normalise='foreground': the curriculum weights positives only, mean one over them."""
    w = MentorNetWeighter(curriculum='self_paced', burn_in=None, normalise='foreground')
    w(make_ctx(list(range(11)) + [1.0, 3.0], [C] * 11 + [0, 1]))  # lambda = (7, 2.4)
    # batch 2: lambda_neg = (7 + 4.8) / 2 = 5.9 would drop the negative 6; lambda_pos =
    # (2.4 + 7.3) / 2 = 4.85 keeps the positive 1 and drops 10; mean one over the 2 positives
    out = w(make_ctx([2.0, 4.0, 6.0, 1.0, 10.0], [C, C, C, 0, 2], [1, 1, 1, 1, 1]))
    assert out.tolist() == pytest.approx([1.0, 1.0, 1.0, 2.0, 0.0])
    assert w.log_scalars()['mentornet_zero_frac'] == pytest.approx(0.2)
    # the same batch over all anchors: v = [1, 1, 0, 1, 0], mean one over 5
    every = MentorNetWeighter(curriculum='self_paced', burn_in=None)
    every(make_ctx(list(range(11)) + [1.0, 3.0], [C] * 11 + [0, 1]))
    assert every(make_ctx([2.0, 4.0, 6.0, 1.0, 10.0], [C, C, C, 0, 2])).tolist() == \
        pytest.approx([5 / 3, 5 / 3, 0.0, 5 / 3, 0.0])


def test_foreground_keeps_ignored_at_zero_and_drops_out_positives_only():
    labels = torch.full((200,), C)
    labels[:50] = 1
    lw = torch.ones(200)
    lw[[0, 100]] = 0
    w = MentorNetWeighter(curriculum='self_paced', burn_in=None, normalise='foreground',
                          example_dropout=0.5)
    out = w(make_ctx(torch.rand(200, generator=torch.Generator().manual_seed(0)), labels, lw))
    assert out[0] == 0 and out[100] == 0
    assert (out[101:] == 1).all() and (out[51:100] == 1).all()  # background untouched
    assert float(out[1:50].mean()) == pytest.approx(1.0, rel=1e-6)
    assert int((out[1:50] == 0).sum()) >= 24  # int(0.5 * 49) dropped, plus the self-paced zeros
    with pytest.raises(ValueError, match='normalise'):
        MentorNetWeighter(normalise='background')


def test_ema_frozen_in_eval_and_when_step_does_not_count():
    w = MentorNetWeighter(curriculum='self_paced', burn_in=None)
    w(make_ctx([1.0, 2.0, 3.0], [C, C, 0]))
    before = w.pct_ema.value.clone()
    w(make_ctx([9.0, 9.0, 9.0], [C, C, 0], update_state=False))
    assert torch.equal(w.pct_ema.value, before)
    w.eval()
    w(make_ctx([9.0, 9.0, 9.0], [C, C, 0]))
    assert torch.equal(w.pct_ema.value, before)


def test_first_call_in_eval_uses_batch_percentile_without_storing():
    w = MentorNetWeighter(curriculum='self_paced', burn_in=None).eval()
    out = w(make_ctx(list(range(11)), [C] * 11))  # threshold 7 -> v = 1 for 0..7
    assert (out > 0).tolist() == [True] * 8 + [False] * 3
    assert not w.pct_ema.initialised.any()


def test_burn_in_and_pd_boundaries_in_progress_units():
    w = MentorNetWeighter(curriculum='pd', burn_in=0.18, spcl_from=0.9)
    loss, labels = list(range(11)), [C] * 11  # lambda_neg = 7 after the first call
    assert w(make_ctx(loss, labels, progress=0.1899)).tolist() == [1.0] * 11  # epoch 18
    # epoch 19: self-paced, 8 of 11 kept -> 11/8 each
    assert w(make_ctx(loss, labels, progress=0.19)).tolist() == pytest.approx(
        [11 / 8] * 8 + [0.0] * 3)
    # epoch 90: SPCL-linear with gamma 1: v = clip(1 - (l - 7)) = 1 x8, 0 (l=8), 0, 0
    w_spcl = w(make_ctx(loss, labels, progress=0.9))
    assert (w_spcl > 0).sum() == 8
    # burn-in applies to every curriculum: HEM drops easy negatives only after epoch 18
    hem = MentorNetWeighter(curriculum='hem', burn_in=0.18)
    assert (hem(make_ctx(loss, labels, progress=0.1)) > 0).all()
    assert (hem(make_ctx(loss, labels, progress=0.5)) == 0).sum() == 7  # losses < 7 dropped


def test_spcl_from_one_keeps_self_paced_to_the_end():
    """spcl_from=1.0 (the study's retinanet_mentornet_no_spcl.py) never reaches SPCL-linear."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / 'projects/reweighting_study/configs/retinanet_mentornet_no_spcl.py'))
    w = MODELS.build(cfg.custom_hooks[0]['weighter'])
    loss, labels = [0.5 * i for i in range(11)], [C] * 11
    w(make_ctx(loss, labels, progress=0.5))  # lambda_neg = 3.5
    # progress 1.0 is epoch 99: self-paced keeps the 8 losses <= 3.5, where PD's SPCL-linear
    # would also give the loss 4.0 weight 1 - (4.0 - 3.5) = 0.5
    assert w(make_ctx(loss, labels, progress=1.0)).tolist() == pytest.approx(
        [11 / 8] * 8 + [0.0] * 3)
    pd = MODELS.build(dict(cfg.custom_hooks[0]['weighter'], spcl_from=0.9))
    pd(make_ctx(loss, labels, progress=0.5))
    assert pd(make_ctx(loss, labels, progress=1.0)).tolist() == pytest.approx(
        [11 / 8.5] * 8 + [11 / 8.5 * 0.5] + [0.0] * 2)


def test_spcl_linear_soft_weights_by_hand():
    w = MentorNetWeighter(curriculum='spcl_linear', burn_in=None, spcl_gamma=2.0)
    # one batch: lambda_neg = percentile_0.7([0, 2, 4, 6, 8]) = 4 + 0.8*2 = 5.6 (h = 2.8)
    out = w(make_ctx([0.0, 2.0, 4.0, 6.0, 8.0], [C] * 5))
    v = np.clip(1 - (np.array([0, 2, 4, 6, 8]) - 5.6) / 2.0, 0, 1)  # [1, 1, 1, 0.8, 0]
    assert out.tolist() == pytest.approx((v * 5 / v.sum()).tolist(), rel=1e-5)


@pytest.mark.parametrize('curriculum', ['pd', 'self_paced', 'hem', 'focal', 'spcl_linear'])
def test_mean_one_over_valid_and_zero_on_ignored(curriculum):
    g = torch.Generator().manual_seed(0)
    n = 500
    labels = torch.full((n,), C)
    labels[:40] = torch.randint(0, C, (40,), generator=g)
    lw = (torch.rand(n, generator=g) > 0.1).float()
    w = MODELS.build(dict(type='MentorNetWeighter', curriculum=curriculum, burn_in=None))
    for progress in (0.3, 0.95):
        out = w(make_ctx(torch.rand(n, generator=g) * 3, labels, lw, progress=progress))
        assert out[lw == 0].abs().sum() == 0
        assert float(out[lw > 0].mean()) == pytest.approx(1.0, rel=1e-5)
        assert (out >= 0).all() and not out.requires_grad


def test_all_zero_weights_stay_zero():
    w = MentorNetWeighter(curriculum='focal', burn_in=None)
    out = w(make_ctx([0.0, 0.0, 0.0], [C, C, 0]))  # (1 - e^0)^2 = 0 everywhere
    assert out.tolist() == [0.0, 0.0, 0.0]


def test_example_dropout_zeroes_exact_fraction():
    torch.manual_seed(0)
    w = MentorNetWeighter(curriculum='self_paced', burn_in=0.5, example_dropout=0.3)
    lw = torch.ones(100)
    lw[:10] = 0
    out = w(make_ctx(torch.rand(100), [C] * 100, lw, progress=0.1))  # burn-in: v = 1 before
    assert int((out[10:] == 0).sum()) == int(0.3 * 90)  # 27 of the 90 valid anchors
    assert float(out[10:].mean()) == pytest.approx(1.0)
    assert out[:10].abs().sum() == 0


def test_state_dict_round_trip_restores_ema():
    a = MentorNetWeighter(curriculum='self_paced', burn_in=None)
    for s in range(3):
        a(make_ctx(torch.rand(50, generator=torch.Generator().manual_seed(s)),
                   [C] * 45 + [1] * 5))
    b = MentorNetWeighter(curriculum='self_paced', burn_in=None)
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.pct_ema.value, a.pct_ema.value)
    assert b.pct_ema.initialised.all()
    ctx = make_ctx(torch.rand(50, generator=torch.Generator().manual_seed(9)), [C] * 45 + [1] * 5)
    a.eval(), b.eval()
    assert torch.equal(a(ctx), b(ctx))


@pytest.mark.parametrize('kwargs, match', [
    (dict(percentile=0.0), 'percentile'), (dict(percentile=1.0), 'percentile'),
    (dict(ema=1.0), 'ema'), (dict(ema=-0.1), 'ema'),
    (dict(curriculum='curriculum_x'), 'curriculum_x'),
    (dict(burn_in=1.5), 'burn_in'), (dict(spcl_from=-0.1), 'spcl_from'),
    (dict(example_dropout=1.0), 'example_dropout'), (dict(spcl_gamma=0.0), 'spcl_gamma'),
    (dict(curriculum='dd'), 'mentor_checkpoint'),
    (dict(curriculum='pd', mentor='dd'), 'disagree'),
    (dict(curriculum='focal', input_scale=2.0), 'input_scale'),
])
def test_option_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MentorNetWeighter(**kwargs)


def test_weighter_pickles():
    import pickle
    w = pickle.loads(pickle.dumps(MentorNetWeighter(curriculum='pd', burn_in=None)))
    out = w(make_ctx(list(range(11)), [C] * 11, progress=0.5))  # self-paced: 8 of 11 kept
    assert out.tolist() == pytest.approx([11 / 8] * 8 + [0.0] * 3)


def test_missing_mentor_file_is_a_clear_error(tmp_path):
    path = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='train_mentornet_dd.py'):
        MentorNetWeighter(mentor='dd', mentor_checkpoint=path)


# ---------------------------------------------------------------------------- DDP
def _batches():
    """Two steps, each split unevenly over two ranks (7 and 12 anchors), with ignored anchors."""
    g = torch.Generator().manual_seed(1)
    steps = []
    for _ in range(2):
        loss = torch.rand(19, generator=g) * 2
        labels = torch.full((19,), C)
        labels[[1, 4, 8, 15]] = torch.tensor([0, 2, 1, 0])
        lw = torch.ones(19)
        lw[[3, 12]] = 0
        steps.append((loss, labels, lw))
    return steps, [slice(0, 7), slice(7, 19)]


def _ddp_worker(rank, port, out_dir, normalise):
    with gloo_process_group(rank, 2, port):
        w = MentorNetWeighter(curriculum='self_paced', burn_in=None, normalise=normalise)
        steps, shards = _batches()
        outs = [w(make_ctx(loss[shards[rank]], labels[shards[rank]], lw[shards[rank]]))
                for loss, labels, lw in steps]
        torch.save(dict(weights=outs, ema=w.pct_ema.value), os.path.join(out_dir, f'{rank}.pt'))


@pytest.mark.parametrize('normalise', ['mean_one', 'foreground'])
def test_ddp_matches_single_process_on_concatenated_batch(tmp_path, normalise):
    mp.spawn(_ddp_worker, args=(free_port(), str(tmp_path), normalise), nprocs=2, join=True)
    single = MentorNetWeighter(curriculum='self_paced', burn_in=None, normalise=normalise)
    steps, shards = _batches()
    expected = [single(make_ctx(*step)) for step in steps]
    for rank in range(2):
        res = torch.load(tmp_path / f'{rank}.pt', weights_only=True)
        assert torch.allclose(res['ema'], single.pct_ema.value, atol=1e-7)
        for got, exp in zip(res['weights'], expected):
            assert torch.allclose(got, exp[shards[rank]], atol=1e-6)
