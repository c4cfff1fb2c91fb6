"""The flat anchor layout shared by the head, the weighters and the diagnostics.

Per-level dense-head outputs ``[(B, A*C, H, W)]`` are flattened image-major: row
``i * n + j`` is anchor ``j`` of image ``i``, with ``n`` the anchors per image and ``j`` running
over the levels' anchors concatenated, each location's ``A`` priors adjacent (the order mmdet's
``_get_targets_single`` sees).
"""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor


def flatten_levels(per_level: Sequence[Tensor], channels: int) -> Tensor:
    """[(B, A*channels, H, W)] per level -> (B * sum_l H*W*A, channels), image-major."""
    batch = per_level[0].size(0)
    flat = [t.permute(0, 2, 3, 1).reshape(batch, -1, channels) for t in per_level]
    return torch.cat(flat, 1).reshape(-1, channels)


def flat_anchor_positions(rows: Tensor, sizes: Sequence[Tuple[int, int]],
                          anchors: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Where the flat (image-major, ``flatten_levels``) anchor indices ``rows`` sit:
    ``(image, level, y, x, anchor)``, for levels of spatial ``sizes`` with ``anchors`` per
    position."""
    per_level = torch.tensor([h * w * anchors for h, w in sizes], device=rows.device)
    starts = torch.cumsum(per_level, 0) - per_level
    image, r = rows // int(per_level.sum()), rows % int(per_level.sum())
    level = torch.bucketize(r, starts[1:], right=True)
    within = r - starts[level]
    width = torch.tensor([w for _, w in sizes], device=rows.device)[level]
    pos, anchor = within // anchors, within % anchors
    return image, level, pos // width, pos % width, anchor


def unflatten_levels(flat: Tensor, feats: Sequence[Tensor], channels: int) -> List[Tensor]:
    """Inverse of ``flatten_levels`` for conv outputs over ``feats``: (N, channels) ->
    [(B, A*channels, H, W)], with A the anchors per position (N = B * sum_l H*W*A)."""
    batch = feats[0].size(0)
    sizes = [f.shape[-2:] for f in feats]
    per_image = flat.reshape(batch, -1, channels)
    anchors = per_image.size(1) // sum(h * w for h, w in sizes)
    out, start = [], 0
    for h, w in sizes:
        n = h * w * anchors
        level = per_image[:, start:start + n].reshape(batch, h, w, anchors * channels)
        out.append(level.permute(0, 3, 1, 2).contiguous())
        start += n
    return out


__all__ = ['flatten_levels', 'unflatten_levels', 'flat_anchor_positions']
