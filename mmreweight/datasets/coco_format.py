"""COCO records of the embedded benchmark, with the extra fields kept for label-noise analysis.

Category ids are ``1..C`` in class order (0 is avoided: some COCO tools treat it as background).
mmdet's ``CocoDataset`` maps them to labels ``0..C-1`` through ``cat_ids``, which pycocotools
returns in the file's category order, so label ``= category_id - 1``.
"""
import json
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np


def category_id(label: int) -> int:
    """COCO category id of class index ``label``."""
    return int(label) + 1


def categories(classes: Sequence[str], supercategory: str) -> List[Dict[str, Any]]:
    """The ``categories`` list: ids ``1..C`` in class order."""
    return [dict(id=category_id(c), name=name, supercategory=supercategory)
            for c, name in enumerate(classes)]


def image_record(image_id: int, file_name: str, canvas_size: int, split: str) -> Dict[str, Any]:
    """An ``images`` entry; ``file_name`` is relative to the split's folder."""
    return dict(id=int(image_id), file_name=file_name, width=canvas_size, height=canvas_size,
                split=split)


def annotation_record(ann_id: int, image_id: int, box: np.ndarray, label: int, clean_label: int,
                      source_index: int, scale: float) -> Dict[str, Any]:
    """An ``annotations`` entry.

    Args:
        ann_id: unique annotation id.
        image_id: the image's id.
        box: ``x, y, w, h`` in pixels; the object covers pixels ``[x, x + w) x [y, y + h)``.
        label: the (possibly noisy) class index the detector is trained with.
        clean_label: the true class index.
        source_index: index of the object in the source pool.
        scale: box long side over the source object's tight-box long side.

    Returns:
        A COCO annotation with ``category_id`` (possibly noisy), ``clean_category_id``, ``noisy``,
        ``source_index`` and ``scale`` added; ``area`` is the box area.
    """
    x, y, w, h = (int(v) for v in box)
    return dict(id=int(ann_id), image_id=int(image_id), category_id=category_id(label),
                bbox=[x, y, w, h], area=w * h, iscrowd=0,
                clean_category_id=category_id(clean_label), noisy=bool(label != clean_label),
                source_index=int(source_index), scale=round(float(scale), 4))


def write_json(obj: Any, path: str, indent: Optional[int] = None) -> None:
    """Write ``obj`` as JSON; key order is insertion order, so equal inputs give equal bytes."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    separators = (',', ':') if indent is None else (',', ': ')
    # dumps (one shot) uses the C encoder, several times faster than dump's chunked encoding
    text = json.dumps(obj, indent=indent, separators=separators)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text + '\n')
