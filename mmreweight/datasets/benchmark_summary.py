"""Per-split statistics of a generated benchmark, read back from its annotation files."""
import json
from typing import Any, Dict, List

import numpy as np

from .benchmark import load_benchmark_info
from .benchmark_build import annotation_file
from .benchmark_config import SPLITS


def read_class_counts(root: str, split: str = 'train', labels: str = 'noisy') -> Dict[str, int]:
    """Annotations per class of one split, in class order.

    Args:
        root: the benchmark's folder.
        split: ``'train'``, ``'val'``, ``'test'`` or ``'meta'``.
        labels: ``'noisy'`` counts the labels a detector is trained with (``category_id``);
            ``'clean'`` counts the true labels (``clean_category_id``).

    Returns:
        class name -> count (every class, zeros included).
    """
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r}; expected one of {", ".join(SPLITS)}')
    if labels not in ('noisy', 'clean'):
        raise ValueError(f"labels must be 'noisy' or 'clean', got {labels!r}")
    coco = _load_annotations(root, split)
    names = [c['name'] for c in coco['categories']]
    return dict(zip(names, _counts(coco, 'category_id' if labels == 'noisy'
                                   else 'clean_category_id').tolist()))


def summarize_split(root: str, split: str) -> Dict[str, Any]:
    """Counts of one split: ``images``, ``objects``, ``class_counts`` (as labelled),
    ``clean_class_counts`` (true labels), ``flipped`` and ``flipped_fraction``."""
    coco = _load_annotations(root, split)
    names = [c['name'] for c in coco['categories']]
    flipped = sum(1 for a in coco['annotations'] if a['category_id'] != a['clean_category_id'])
    num_objects = len(coco['annotations'])
    return dict(images=len(coco['images']), objects=num_objects,
                class_counts=dict(zip(names, _counts(coco, 'category_id').tolist())),
                clean_class_counts=dict(zip(names, _counts(coco, 'clean_category_id').tolist())),
                flipped=flipped, flipped_fraction=flipped / max(num_objects, 1))


def format_summary(root: str) -> str:
    """A human-readable table: per split, images, objects, flipped fraction, the largest/smallest
    class ratio and the per-class counts of true labels (and of the given labels when noisy)."""
    info = load_benchmark_info(root)
    lines: List[str] = [f'{info["name"]} at {root}',
                        f'classes: {", ".join(info["classes"])}']
    for split in SPLITS:
        s = summarize_split(root, split)
        clean = list(s['clean_class_counts'].values())
        lines.append(f'  {split:<5} images {s["images"]:>6}  objects {s["objects"]:>6}  '
                     f'flipped {s["flipped_fraction"]:6.1%}  '
                     f'max/min class {max(clean) / max(min(clean), 1):6.1f}  '
                     f'per class {clean}')
        if s['flipped']:
            lines.append(f'  {"":<5} as labelled (noisy) {list(s["class_counts"].values())}')
    return '\n'.join(lines)


def _load_annotations(root: str, split: str) -> Dict[str, Any]:
    with open(annotation_file(root, split), encoding='utf-8') as f:
        return json.load(f)


def _counts(coco: Dict[str, Any], key: str) -> np.ndarray:
    """Annotations per category (categories in file order) by ``key``."""
    ids = [c['id'] for c in coco['categories']]
    position = {cat_id: i for i, cat_id in enumerate(ids)}
    values = [position[a[key]] for a in coco['annotations']]
    return np.bincount(np.asarray(values, dtype=np.int64), minlength=len(ids))
