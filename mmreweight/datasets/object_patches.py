"""Tight object boxes from pixel intensities, and object patches rescaled to a target size."""
from typing import Tuple

import cv2
import numpy as np

# Rescaling a patch and re-cropping it to its tight box can lose a faint edge row, so the target is
# corrected a few times until the tight box lands in the size range.
_MAX_RESCALE_STEPS = 10


def tight_boxes(images: np.ndarray, threshold: int) -> Tuple[np.ndarray, np.ndarray]:
    """Tight boxes of the pixels brighter than ``threshold``, for a whole stack at once.

    Args:
        images: (N, H, W) uint8.
        threshold: a pixel is part of the object when its value is ``> threshold``.

    Returns:
        boxes: (N, 4) int64 ``x0, y0, x1, y1`` with exclusive ends (zeros for empty images).
        nonempty: (N,) bool, whether the image has any pixel above the threshold.
    """
    mask = images > threshold
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    nonempty = rows.any(axis=1)
    height, width = images.shape[1:]
    # argmax finds the first True; on the reversed axis it finds the last
    y0, y1 = rows.argmax(axis=1), height - rows[:, ::-1].argmax(axis=1)
    x0, x1 = cols.argmax(axis=1), width - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)
    boxes[~nonempty] = 0
    return boxes, nonempty


def crop_to_tight_box(patch: np.ndarray, threshold: int) -> np.ndarray:
    """``patch`` cropped to the tight box of its pixels above ``threshold`` (empty if none)."""
    box, nonempty = tight_boxes(patch[None], threshold)
    if not nonempty[0]:
        return patch[:0, :0]
    x0, y0, x1, y1 = box[0]
    return patch[y0:y1, x0:x1]


def rescale_object(crop: np.ndarray, long_side: int, min_size: int, max_size: int,
                   threshold: int) -> np.ndarray:
    """Resize a tightly cropped object so that its tight box's longer side is about ``long_side``.

    The aspect ratio is kept. After resizing, the patch is cropped again to the tight box of its
    pixels above ``threshold``, so the returned patch *is* the object's box: every border row and
    column holds a pixel above the threshold. Interpolation can dim an edge below the threshold; the
    target is then corrected until the longer side lies in ``[min_size, max_size]``.

    Args:
        crop: (h, w) uint8 object, already tight at ``threshold``.
        long_side: the wanted longer side, in ``[min_size, max_size]``.
        min_size / max_size: the accepted range of the longer side.
        threshold: the object-pixel threshold.

    Returns:
        (h', w') uint8 patch with ``min_size <= max(h', w') <= max_size``.

    Raises:
        ValueError: no target size gives a tight box in range (e.g. a range narrower than the
            interpolation's edge losses).
    """
    height, width = crop.shape
    source_long = max(height, width)
    target = long_side
    for _ in range(_MAX_RESCALE_STEPS):
        scale = target / source_long
        size = (max(1, round(width * scale)), max(1, round(height * scale)))  # cv2 wants (w, h)
        # INTER_AREA averages when shrinking (no aliasing); bilinear is smooth when enlarging
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        patch = crop_to_tight_box(cv2.resize(crop, size, interpolation=interpolation), threshold)
        got = max(patch.shape)
        if min_size <= got <= max_size:
            return np.ascontiguousarray(patch)
        target += (min_size - got) if got < min_size else (max_size - got)
        target = max(target, 1)
    raise ValueError(f'could not rescale a {height}x{width} object to a tight box of '
                     f'{min_size}-{max_size} px at pixel_threshold={threshold}; widen the size '
                     'range or lower the threshold')
