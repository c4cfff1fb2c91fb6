"""A run's numbers: COCO metrics of a checkpoint (from ``tools/test.py --metrics-out``), the
rarest classes of the training set and their mean AP."""
import math
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

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


_TRAIN_ITER = re.compile(r'Iter\(train\) \[\s*(\d+)/\d+\]')
_VAL_MAP = re.compile(r'Iter\(val\) .*coco/bbox_mAP: ([0-9.]+)')
_VAL_EMPTY = 'results of the whole dataset is empty'


def val_curve(train_log: str) -> List[Tuple[int, float]]:
    """(iteration, val COCO mAP) of every validation during training, from the training log
    (each validation follows the last logged training iteration). A validation without any
    detection logs an error, then mmengine repeats the previous metrics: it counts as 0, as
    COCO scores an empty result."""
    curve: Dict[int, float] = {}
    empty, current = set(), 0
    with open(train_log) as f:
        for line in f:
            match = _TRAIN_ITER.search(line)
            if match:
                current = int(match.group(1))
            elif _VAL_EMPTY in line:
                curve[current] = 0.0
                empty.add(current)
            else:
                match = _VAL_MAP.search(line)
                if match and current not in empty:
                    curve[current] = float(match.group(1))
    return sorted(curve.items())


_SCALAR = re.compile(r'(\w+): (-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)(?=\s|$)')


def train_scalars(train_log: str, keys: Sequence[str]) -> Dict[str, List[Tuple[int, float]]]:
    """(iteration, value) of each of ``keys`` on the training lines of a log (one per logger
    interval), e.g. the meta hook's mean weights of clean and noisy positives. mmengine logs the
    mean over the interval. A key never logged maps to an empty list."""
    curves: Dict[str, List[Tuple[int, float]]] = {k: [] for k in keys}
    with open(train_log) as f:
        for line in f:
            match = _TRAIN_ITER.search(line)
            if not match:
                continue
            logged = dict(_SCALAR.findall(line[match.end():]))
            for key in keys:
                if key in logged:
                    curves[key].append((int(match.group(1)), float(logged[key])))
    return curves


__all__ = ['NUM_RARE', 'rarest_classes', 'checkpoint_metrics', 'best_checkpoint_iter',
           'val_curve', 'train_scalars']
