"""A run's numbers: COCO metrics of a checkpoint (from ``tools/test.py --metrics-out``), the
rarest classes of the training set and their mean AP."""
import math
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

#: how many of the rarest training classes the rare-class AP averages
NUM_RARE = 3
#: mmdet's CocoMetric keys (``prefix='coco'``)
MAP_KEY, AP50_KEY, AP75_KEY = 'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75'
_BEST_CKPT = re.compile(r'best_.*_iter_(\d+)\.pth$')


def rarest_classes(train_counts: Mapping[str, int], k: int = NUM_RARE) -> List[str]:
    """The ``k`` classes with the fewest training annotations (ties: class order)."""
    names = list(train_counts)
    return sorted(names, key=lambda n: (train_counts[n], names.index(n)))[:k]


def _ap(value: Any) -> float:
    """COCO AP as a float; a class without ground truth (mmdet writes NaN) stays NaN."""
    return float('nan') if value is None else float(value)


def checkpoint_metrics(metrics: Mapping[str, Any], classes: Sequence[str],
                       rare: Sequence[str]) -> Dict[str, Any]:
    """mAP, AP50, AP75, per-class AP and rare-class AP of one evaluation.

    CocoMetric returns no metric at all when the detector has no detection above the score
    threshold (an untrained or collapsed model); every AP is then 0, as COCO scores an empty
    result, and ``empty`` is set.
    """
    empty = MAP_KEY not in metrics
    per_class = {c: 0.0 if empty else _ap(metrics.get(f'coco/{c}_precision')) for c in classes}
    rare_aps = [per_class[c] for c in rare if not math.isnan(per_class[c])]
    return dict(mAP=0.0 if empty else float(metrics[MAP_KEY]),
                AP50=0.0 if empty else float(metrics[AP50_KEY]),
                AP75=0.0 if empty else float(metrics.get(AP75_KEY, float('nan'))),
                per_class_AP=per_class,
                rare_AP=sum(rare_aps) / len(rare_aps) if rare_aps else float('nan'),
                empty=empty)


def best_checkpoint_iter(path: str) -> Optional[int]:
    """Iteration of a ``best_coco_bbox_mAP_iter_<n>.pth`` checkpoint (None if not one)."""
    match = _BEST_CKPT.search(path)
    return int(match.group(1)) if match else None


__all__ = ['NUM_RARE', 'rarest_classes', 'checkpoint_metrics', 'best_checkpoint_iter']
