"""Shared helpers of the loss tests (random batches, value and gradient)."""
import torch


def make_cls_batch(n=300, c=7, seed=0, dtype=torch.float32, pos_frac=0.2, scale=3.0):
    """Random logits, class-index labels (``c`` = background) and per-anchor weights."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g) * scale).to(dtype)
    labels = torch.randint(0, c, (n, ), generator=g)
    background = torch.rand(n, generator=g) > pos_frac
    labels[background] = c
    weights = torch.rand(n, generator=g) + 0.5
    return logits, labels, weights


def grads(loss_fn, logits, *args, **kwargs):
    """(value, d value / d logits) of ``loss_fn(logits, *args, **kwargs).sum()``."""
    x = logits.detach().clone().requires_grad_(True)
    out = loss_fn(x, *args, **kwargs)
    (g, ) = torch.autograd.grad(out.sum(), x)
    return out.detach(), g
