r"""Gradient density and harmonizing weights of GHM (Li, Liu & Wang, "Gradient Harmonized
Single-stage Detector", AAAI 2019), shared by GHM-C and GHM-R.

The paper approximates the gradient density of Eq. (4) on :math:`M` unit regions ("bins") of the
gradient norm :math:`g`: with :math:`R_j` the number of valid elements in bin :math:`j`, or its
moving average :math:`S_j^{(t)} = m S_j^{(t-1)} + (1 - m) R_j^{(t)}` (Sec. 3.3), each element gets
the harmonizing weight of Eq. (6)

.. math::
    \beta_i = \frac{N}{n \, S_{b(i)}},

where :math:`N` ("tot") is the number of valid elements, :math:`b(i)` the bin of :math:`g_i` and
:math:`n` the number of non-empty bins (the authors' code, and mmdet, divide by :math:`n` where
the paper writes :math:`M`). All functions here are vectorised over bins: no Python loop, no
device-to-host copy.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def ghm_edges(bins: int, last_edge: float) -> Tensor:
    """Bin edges ``0, 1/bins, ..., (bins-1)/bins, last_edge`` in float32, as mmdet builds them
    (the same float32 values, so that elements fall in the same bins)."""
    edges = torch.arange(bins + 1).float() / bins
    edges[-1] = last_edge
    return edges


def floor_binning_is_exact(edges: Tensor) -> bool:
    """Whether ``floor(g * bins)`` puts every float32 ``g`` in ``[0, edges[-1])`` in the same bin
    as comparing it with ``edges`` (as :func:`ghm_edges` builds them) does.

    ``g * bins`` is off by at most a few ulps, so only neighbours of the interior edges can
    disagree; they are all tried. True for the bins in use (10 and 30), false for a few others
    (e.g. 20 and 50), which then take the slower ``bucketize`` path.
    """
    bins = edges.numel() - 1
    interior = edges[1:-1].view(torch.int32)
    near = (interior[:, None] + torch.arange(-64, 65, dtype=torch.int32)).view(torch.float32)
    return bool(torch.equal(_floor_slot(near, bins), _bucketize_slot(near, edges)))


def _floor_slot(g: Tensor, bins: int) -> Tensor:
    # g >= 0, so the cast truncates like floor; the last bin runs up to the last edge
    return (g * bins).to(torch.int32).clamp_(0, bins - 1)


def _bucketize_slot(g: Tensor, edges: Tensor) -> Tensor:
    return torch.bucketize(g, edges[1:], out_int32=True, right=True)


def gradient_density(g: Tensor,
                     valid: Optional[Tensor],
                     edges: Tensor,
                     floor_exact: bool = False) -> Tuple[Tensor, Tensor]:
    """Histogram of the gradient norms ``g`` of the ``valid`` elements.

    Bin ``j`` holds ``edges[j] <= g < edges[j + 1]`` (mmdet's convention).

    Args:
        g: gradient norms in ``[0, edges[-1])``, any shape.
        valid: bool, broadcastable to ``g``, False for ignored elements; ``None``: all valid.
        edges: ``(bins + 1,)`` bin edges from :func:`ghm_edges`.
        floor_exact: :func:`floor_binning_is_exact` of ``edges``, which allows binning by
            ``floor(g * bins)`` (4 elementwise passes) instead of a binary search (3x slower).

    Returns:
        ``(slot, counts)``: the int32 bin of every element, ``bins`` for the elements that are
        not counted (invalid, or beyond the last edge), and the ``(bins,)`` float32 number of
        valid elements per bin.
    """
    bins = edges.numel() - 1
    slot = _floor_slot(g, bins) if floor_exact else _bucketize_slot(g, edges)
    if valid is not None:
        slot = torch.where(valid, slot, bins)
    # index_add_ rather than bincount, which reads the maximum back to the host on CUDA
    ones = torch.ones((), device=g.device).expand(slot.numel())
    counts = torch.zeros(bins + 1, device=g.device).index_add_(0, slot.view(-1), ones)
    return slot, counts[:bins]


def harmonizing_weights(slot: Tensor,
                        counts: Tensor,
                        tot: Tensor,
                        acc_sum: Optional[Tensor] = None,
                        momentum: float = 0.0) -> Tuple[Tensor, Tensor]:
    r"""Per-element harmonizing weights :math:`\beta_i = N / (n S_{b(i)})`.

    Args:
        slot: int32 bin of every element from :func:`gradient_density`, ``bins`` for
            uncounted elements.
        counts: ``(bins,)`` number of valid elements per bin, :math:`R_j`.
        tot: scalar :math:`N`, the number of valid elements (at least 1).
        acc_sum: ``(bins,)`` previous moving averages :math:`S^{(t-1)}`; needed if
            ``momentum > 0``.
        momentum: :math:`m` in [0, 1); 0 uses the counts of this call alone. Only non-empty bins
            move, as in the authors' code.

    Returns:
        ``(weights, acc)``: float32 weights shaped like ``slot`` (0 for uncounted elements) and
        the updated ``(bins,)`` moving averages (``counts`` if ``momentum == 0``).
    """
    nonempty = counts > 0
    if momentum > 0:
        acc = torch.where(nonempty, momentum * acc_sum + (1 - momentum) * counts, acc_sum)
    else:
        acc = counts
    n = nonempty.sum().clamp(min=1)
    # same operation order as mmdet (tot / acc, then / n) so that weights agree to the last bit
    bin_weight = torch.where(nonempty, tot / torch.where(nonempty, acc, 1.0), 0.0) / n
    bin_weight = torch.cat([bin_weight, bin_weight.new_zeros(1)])
    return bin_weight.index_select(0, slot.view(-1)).view_as(slot), acc
