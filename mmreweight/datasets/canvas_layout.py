"""Non-overlapping placement of rectangles on a square canvas."""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

# Random greedy placement can fragment the free space; it is retried this many times before the
# grid fallback (which always succeeds when the configuration passed BenchmarkConfig's check).
_RANDOM_ATTEMPTS = 20


def place_rectangles(shapes: Sequence[Tuple[int, int]], canvas_size: int, min_gap: int,
                     max_side: int, rng: np.random.Generator) -> np.ndarray:
    """Top-left corners for rectangles so that no two overlap and all lie inside the canvas.

    Rectangles are placed largest first, each at a position drawn uniformly among all positions
    that keep at least ``min_gap`` background pixels to the rectangles already placed (found
    exactly, with an integral image of the occupied area). If the free space gets fragmented, the
    whole image is retried; after ``_RANDOM_ATTEMPTS`` failures the rectangles go to distinct cells
    of a grid of ``max_side``-px cells, jittered inside their cell.

    Args:
        shapes: (height, width) per rectangle, each side in ``[1, max_side]``.
        canvas_size: side of the square canvas.
        min_gap: background pixels kept between any two rectangles.
        max_side: the largest side any rectangle may have (sets the fallback grid).
        rng: random generator.

    Returns:
        (K, 2) int64 ``(y, x)`` top-left corners, in the order of ``shapes``.

    Raises:
        ValueError: the rectangles cannot be guaranteed to fit (more than the fallback grid holds).
    """
    shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
    if (shapes < 1).any() or (shapes > max_side).any() or max_side > canvas_size:
        raise ValueError(f'rectangle sides must be in [1, {max_side}] on a {canvas_size}-px canvas,'
                         f' got {shapes.tolist()}')
    order = np.argsort(-shapes.prod(axis=1), kind='stable')
    for _ in range(_RANDOM_ATTEMPTS):
        corners = _place_greedy(shapes[order], canvas_size, min_gap, rng)
        if corners is not None:
            break
    else:
        corners = _place_on_grid(shapes[order], canvas_size, min_gap, max_side, rng)
    placed = np.empty_like(corners)
    placed[order] = corners
    return placed


def _place_greedy(shapes: np.ndarray, canvas_size: int, min_gap: int,
                  rng: np.random.Generator) -> Optional[np.ndarray]:
    """One pass of uniform random placement; None when some rectangle finds no free position."""
    occupied = np.zeros((canvas_size, canvas_size), dtype=np.uint8)
    corners = np.empty((len(shapes), 2), dtype=np.int64)
    for i, (h, w) in enumerate(shapes):
        free = _free_corners(occupied, h, w)
        if free.size == 0:
            return None
        y, x = np.divmod(free[rng.integers(free.size)], canvas_size - w + 1)
        corners[i] = y, x
        # mark the rectangle grown by the gap, so later ones keep their distance
        occupied[max(0, y - min_gap):y + h + min_gap, max(0, x - min_gap):x + w + min_gap] = 1
    return corners


def _free_corners(occupied: np.ndarray, h: int, w: int) -> np.ndarray:
    """Flat indices (row-major over the (H-h+1, W-w+1) grid) of corners whose h x w window is free.

    Window sums come from the integral image: four lookups per corner, vectorised over all corners.
    """
    integral = cv2.integral(occupied, sdepth=cv2.CV_32S)  # (H+1, W+1), zero first row/column
    ny, nx = occupied.shape[0] - h + 1, occupied.shape[1] - w + 1
    window = (integral[h:h + ny, w:w + nx] - integral[:ny, w:w + nx]
              - integral[h:h + ny, :nx] + integral[:ny, :nx])
    return np.flatnonzero(window == 0)


def _place_on_grid(shapes: np.ndarray, canvas_size: int, min_gap: int, max_side: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Distinct random cells of a grid of ``max_side`` cells spaced ``min_gap`` apart."""
    per_row = (canvas_size + min_gap) // (max_side + min_gap)
    if per_row * per_row < len(shapes):
        raise ValueError(f'{len(shapes)} rectangles of up to {max_side} px with a {min_gap}-px gap '
                         f'do not fit on a {canvas_size}-px canvas')
    pitch = max_side + min_gap
    cells = rng.choice(per_row * per_row, size=len(shapes), replace=False)
    cell_y, cell_x = np.divmod(cells, per_row)
    jitter_y = rng.integers(0, max_side - shapes[:, 0] + 1)
    jitter_x = rng.integers(0, max_side - shapes[:, 1] + 1)
    return np.stack([cell_y * pitch + jitter_y, cell_x * pitch + jitter_x], axis=1)
