"""Rendering a planned split: rescale each object, place it without overlap, paint the canvas."""
from typing import Iterator, NamedTuple

import numpy as np

from .canvas_layout import place_rectangles
from .object_patches import rescale_object
from .split_plan import SplitPlan


class RenderedImage(NamedTuple):
    """One canvas and its objects' tight boxes.

    Attributes:
        image: (S, S) uint8 canvas, objects on a black background.
        boxes: (k, 4) int64 COCO boxes ``x, y, w, h`` (pixels ``[x, x + w)``), in plan order.
        scales: (k,) float64 box long side over the source object's tight-box long side.
    """
    image: np.ndarray
    boxes: np.ndarray
    scales: np.ndarray


def render_split(plan: SplitPlan, source_images: np.ndarray, source_boxes: np.ndarray,
                 canvas_size: int, min_size: int, max_size: int, min_gap: int,
                 pixel_threshold: int, rng: np.random.Generator) -> Iterator[RenderedImage]:
    """Yield the split's images in plan order.

    Each object is cropped to its source tight box, rescaled by
    :func:`~.object_patches.rescale_object` (so the pasted patch is exactly its tight box), and
    pasted at a position from :func:`~.canvas_layout.place_rectangles`. Patches never overlap, so
    pasting is a plain copy and every pixel above ``pixel_threshold`` lies inside exactly one box.

    Args:
        plan: the split's plan.
        source_images: (N, h, w) uint8 source pool.
        source_boxes: (N, 4) tight ``x0, y0, x1, y1`` boxes of the source objects.
        canvas_size / min_size / max_size / min_gap / pixel_threshold: as in
            :class:`~.benchmark_config.BenchmarkConfig`.
        rng: random generator for positions.
    """
    starts = plan.image_starts
    for i in range(len(plan.image_ids)):
        objects = range(starts[i], starts[i + 1])
        patches = []
        for j in objects:
            x0, y0, x1, y1 = source_boxes[plan.source_index[j]]
            crop = source_images[plan.source_index[j], y0:y1, x0:x1]
            patches.append(rescale_object(crop, int(plan.long_side[j]), min_size, max_size,
                                          pixel_threshold))
        shapes = [p.shape for p in patches]
        corners = place_rectangles(shapes, canvas_size, min_gap, max_size, rng)
        canvas = np.zeros((canvas_size, canvas_size), dtype=np.uint8)
        boxes = np.empty((len(patches), 4), dtype=np.int64)
        scales = np.empty(len(patches), dtype=np.float64)
        for k, (patch, (y, x), j) in enumerate(zip(patches, corners, objects)):
            h, w = patch.shape
            canvas[y:y + h, x:x + w] = patch
            boxes[k] = x, y, w, h
            x0, y0, x1, y1 = source_boxes[plan.source_index[j]]
            scales[k] = max(h, w) / max(x1 - x0, y1 - y0)
        yield RenderedImage(canvas, boxes, scales)
