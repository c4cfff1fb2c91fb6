"""The label-issue finder against cleanlab's object-detection scores, both on out-of-sample
predictions (K-fold cross-validation, as cleanlab's documentation prescribes), scored on the
embedded benchmark's record of which labels it corrupted.

For every fold a focal RetinaNet is trained on the other folds' training images; on the held-out
images it gives (a) our scores (:func:`mmreweight.analysis.label_issues.score_dataset`;
``neighbour_margin`` asks each annotation's neighbours among that fold's annotations) and (b) its
test-mode detections, from which ``cleanlab.object_detection.rank.compute_swap_box_scores`` scores
every given box (low = its class was likely swapped). cleanlab's mislabel score is 1 − the swap
score, so that for both a higher score means more likely mislabelled. cleanlab is run with its
default ``high_probability_threshold`` and with 0.5 (``cleanlab_p50``).

The pure functions here split, convert and summarise; ``tools/compare_finders.py`` trains and
predicts.
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from mmreweight.analysis.label_issues import ranking_metrics

#: the finders a cell compares, as (kind, parameter): ours with each of its scores (the
#: neighbours asked among the same held-out fold's annotations), cleanlab's swap score with its
#: default probability threshold and with 0.5 (a detector trained on noisy labels is rarely 95%
#: sure of anything)
FINDERS = {'ours': ('ours', 'margin'), 'ours_self_confidence': ('ours', 'self_confidence'),
           'ours_neighbours': ('ours', 'neighbour_margin'),
           'cleanlab': ('cleanlab', None), 'cleanlab_p50': ('cleanlab', 0.5)}


def fold_indices(num_images: int, folds: int, seed: int) -> List[List[int]]:
    """``folds`` disjoint, sorted lists of dataset indices covering ``range(num_images)``, drawn
    by a seeded permutation (sizes differ by at most one)."""
    if folds < 2 or folds > num_images:
        raise ValueError(f'folds must be in [2, {num_images}], got {folds}')
    order = np.random.default_rng(seed).permutation(num_images)
    return [sorted(int(i) for i in order[k::folds]) for k in range(folds)]


def xywh_to_xyxy(box: Sequence[float]) -> List[float]:
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def cleanlab_labels(image_ann_ids: Sequence[Sequence[int]], coco_dict: Mapping[str, Any],
                    cat_ids: Sequence[int]) -> List[Dict[str, np.ndarray]]:
    """cleanlab's ``labels``: per image ``{'bboxes': (L, 4) xyxy, 'labels': (L,) class index}``,
    its boxes in the order of ``image_ann_ids`` (each image's annotation ids)."""
    anns = {a['id']: a for a in coco_dict['annotations']}
    index = {c: i for i, c in enumerate(cat_ids)}
    out = []
    for ids in image_ann_ids:
        boxes = [xywh_to_xyxy(anns[a]['bbox']) for a in ids]
        out.append(dict(bboxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                        labels=np.asarray([index[anns[a]['category_id']] for a in ids],
                                          dtype=np.int64)))
    return out


def cleanlab_prediction(bboxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                        num_classes: int) -> np.ndarray:
    """One image's detections in cleanlab's (MMDetection 2.x) format: an object array of
    ``num_classes`` arrays, class ``c``'s detections as ``(M_c, 5)`` rows ``x1, y1, x2, y2,
    score``."""
    rows = np.concatenate([np.asarray(bboxes, dtype=np.float32).reshape(-1, 4),
                           np.asarray(scores, dtype=np.float32).reshape(-1, 1)], axis=1)
    labels = np.asarray(labels).reshape(-1)
    out = np.empty(num_classes, dtype=object)
    for c in range(num_classes):
        out[c] = rows[labels == c]
    return out


def cleanlab_mislabel_scores(labels: List[Dict[str, np.ndarray]], predictions: List[np.ndarray],
                             high_probability_threshold: Optional[float] = None
                             ) -> List[np.ndarray]:
    """Per image, 1 − cleanlab's swap score of each given box. cleanlab only counts detections
    of another class whose probability is above ``high_probability_threshold`` (None: its
    default, 0.95 in cleanlab 2.9); a box without one has swap score 1 (mislabel score 0)."""
    from cleanlab.object_detection.rank import compute_swap_box_scores
    swap = compute_swap_box_scores(labels=labels, predictions=predictions,
                                   high_probability_threshold=high_probability_threshold)
    return [1.0 - np.asarray(s, dtype=np.float64).reshape(-1) for s in swap]


def compare(scores: Mapping[str, Mapping[int, float]], coco_dict: Mapping[str, Any]
            ) -> Dict[str, Any]:
    """Each finder's :func:`~mmreweight.analysis.label_issues.ranking_metrics` over the
    annotations every finder scored (a finite score from each), against the annotations'
    ``noisy`` flags."""
    noisy = {a['id']: bool(a['noisy']) for a in coco_dict['annotations']}
    common = sorted(a for a in noisy
                    if all(a in s and np.isfinite(s[a]) for s in scores.values()))
    return {name: ranking_metrics([s[a] for a in common], [noisy[a] for a in common])
            for name, s in scores.items()}


__all__ = ['FINDERS', 'fold_indices', 'xywh_to_xyxy', 'cleanlab_labels', 'cleanlab_prediction',
           'cleanlab_mislabel_scores', 'compare']
