"""DDP reductions: two gloo ranks, each with half of the training and clean batches, produce the
weights / the VNet hypergradient of one process on the concatenated batches.

Concatenated-batch semantics are DDP's: the training and clean losses are the mean over ranks of
each rank's loss (own ``avg_factor``, own BN batch statistics), and the normalisation of the weights
runs over all ranks' anchors. The single-process reference below is a create_graph look-ahead on
exactly that objective.
"""
import copy
import os

import pytest
import torch
import torch.multiprocessing as mp

import mmreweight  # noqa: F401
from mmreweight.testing.distributed import free_port, gloo_process_group
from mmreweight.testing.meta_reference import (detector_loss, functional, per_anchor_losses,
                                              reference_l2rw_weights)
from mmreweight.testing.tiny_retinanet import build_tiny_retinanet, synthetic_batch

WORLD = 2
LR = 0.1


def batches():
    train = synthetic_batch(num_images=4, dtype=torch.float64, seed=11)
    clean = synthetic_batch(num_images=4, dtype=torch.float64, seed=12)
    return train, clean


def shard(batch, rank):
    inputs, samples = batch
    half = inputs.shape[0] // WORLD
    return inputs[rank * half:(rank + 1) * half], samples[rank * half:(rank + 1) * half]


def _worker(rank, port, out_dir, theta):
    with gloo_process_group(rank, WORLD, port):
        from mmreweight.weighting import L2RWWeighter, MetaWeightNetWeighter
        train, clean = batches()
        results = {}
        for name in ('l2rw', 'mwnet'):
            model = build_tiny_retinanet(torch.float64)
            torch.manual_seed(0)
            weighter = (L2RWWeighter(theta) if name == 'l2rw' else MetaWeightNetWeighter(
                theta, optim_wrapper=dict(type='SGD', lr=1.0))).double().bind(model, lr=LR)
            out = {}
            weighter.register_forward_hook(lambda m, a, w: out.update(w=w))
            weighter.prepare_clean(*shard(clean, rank))
            model.bbox_head.weighter = weighter
            model.loss(*shard(train, rank))
            results[name] = out['w']
            if name == 'mwnet':
                results['hypergrad'] = weighter.last_hypergrad
        torch.save(results, os.path.join(out_dir, f'rank{rank}.pth'))


def reference_mwnet_ddp(model, vnet, names, train, clean):
    """create_graph hypergradient of mean_r L_clean,r(theta') with
    theta' = theta - lr * grad mean_r sum_{a in r} w_a l_a / avg_r, w mean one over all ranks."""
    params = dict(model.named_parameters())
    parts = [functional(model, params, per_anchor_losses, *shard(train, r)) for r in range(WORLD)]
    valid = [t.label_weights > 0 for _, t in parts]
    raw = [vnet(loss.detach()[v]) for (loss, _), v in zip(parts, valid)]
    count = sum(int(v.sum()) for v in valid)
    total = sum(r.sum() for r in raw)
    inner = 0
    for (loss, t), v, r in zip(parts, valid, raw):
        w = torch.zeros_like(loss).masked_scatter(v, r * count / total)
        inner = inner + (w * loss).sum() / (t.avg_factor + torch.finfo(torch.float32).eps) / WORLD
    theta = [params[n] for n in names]
    grads = torch.autograd.grad(inner, theta, create_graph=True)
    new = dict(params)
    new.update({n: p - LR * g for n, p, g in zip(names, theta, grads)})
    clean_loss = sum(functional(model, new, detector_loss, *shard(clean, r))
                     for r in range(WORLD)) / WORLD
    return torch.autograd.grad(clean_loss, list(vnet.parameters()))


def reference_l2rw_ddp(model, names, train, clean):
    """L2RW with the clean loss mean_r L_clean,r and the inner step sum over all ranks' anchors."""
    params = dict(model.named_parameters())
    parts = [functional(model, params, per_anchor_losses, *shard(train, r)) for r in range(WORLD)]
    eps = [torch.zeros_like(loss, requires_grad=True) for loss, _ in parts]
    inner = sum((e * loss).sum() for e, (loss, _) in zip(eps, parts))
    theta = [params[n] for n in names]
    grads = torch.autograd.grad(inner, theta, create_graph=True)
    new = dict(params)
    new.update({n: p - LR * g for n, p, g in zip(names, theta, grads)})
    clean_loss = sum(functional(model, new, detector_loss, *shard(clean, r))
                     for r in range(WORLD)) / WORLD
    raw = [(-g).clamp(min=0) for g in torch.autograd.grad(clean_loss, eps)]
    valid = [t.label_weights > 0 for _, t in parts]
    raw = [torch.where(v, r, torch.zeros_like(r)) for r, v in zip(raw, valid)]
    count = sum(int(v.sum()) for v in valid)
    total = sum(r.sum() for r in raw)
    return [r * count / total for r in raw]


@pytest.mark.parametrize('theta', ['cls_out'])
def test_two_ranks_equal_one_process(tmp_path, theta):
    mp.spawn(_worker, args=(free_port(), str(tmp_path), theta), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pth', weights_only=False) for r in range(WORLD)]
    train, clean = batches()
    model = build_tiny_retinanet(torch.float64)
    names = ['bbox_head.retina_cls.weight', 'bbox_head.retina_cls.bias']

    expected = reference_l2rw_ddp(model, names, train, clean)
    for r in range(WORLD):
        assert torch.allclose(ranks[r]['l2rw'], expected[r], atol=1e-5, rtol=0)
    # the global normalisation matters: per-rank mean-one weights would differ
    single = reference_l2rw_weights(model, names, LR, shard(train, 0), shard(clean, 0))
    assert not torch.allclose(single, expected[0], atol=1e-3)

    torch.manual_seed(0)
    from mmreweight.weighting import MetaWeightNetWeighter
    vnet = copy.deepcopy(MetaWeightNetWeighter().double().vnet)
    ref = reference_mwnet_ddp(model, vnet, names, train, clean)
    for r in range(WORLD):
        for ours, exp in zip(ranks[r]['hypergrad'], ref):
            assert torch.allclose(ours, exp, atol=1e-8, rtol=1e-6)
    # both ranks step the VNet identically, so they produce weights from the same VNet
    assert all(torch.equal(a, b) for a, b in zip(ranks[0]['hypergrad'], ranks[1]['hypergrad']))
