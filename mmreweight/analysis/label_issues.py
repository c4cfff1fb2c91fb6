r"""Finding mislabelled boxes in a detection training set with a trained detector.

For every training annotation :math:`a` with given label :math:`y_a`, let :math:`P_a` be the
anchors that the head's own assigner matches to it (its positive anchors) and :math:`x_{pc}` the
classification logit of anchor :math:`p` for class :math:`c` (a sigmoid classifier, as
RetinaNet's). Then

.. math::

    \bar p_{ac} = \frac{1}{|P_a|} \sum_{p \in P_a} \sigma(x_{pc}), \qquad
    \mathrm{suggested}_a = \arg\max_c \bar p_{ac},

and the score (higher: more likely mislabelled) is one of

.. math::

    \mathrm{margin}_a = \max_{c \ne y_a} \bar p_{ac} - \bar p_{a y_a} \in [-1, 1], \qquad
    \mathrm{self\_confidence}_a = 1 - \bar p_{a y_a} \in [0, 1].

The margin (the default) also counts what the detector believes instead: under class-dependent
noise (pair flips) a detector that learned the noisy labels gives a flipped box's given label a
fair probability, yet less than its true class's, which only the margin sees (the same two
rankings as cleanlab's ``normalized_margin`` and ``self_confidence`` for classification). An
annotation without a positive anchor gets score NaN and no suggestion (``num_anchors`` 0); it is
never flagged.

``neighbour_margin`` asks the annotation's neighbours instead of the detector alone (the deep
k-NN filter of Bahri et al., ICML 2020, on the detector's class probabilities): with
:math:`N_k(a)` the k training annotations nearest to :math:`a` by the Euclidean distance between
their vectors :math:`\bar p_{a\cdot}` (:math:`a` itself left out) and :math:`v_{ac}` the share of
them whose given label is :math:`c`,

.. math::

    \mathrm{neighbour\_margin}_a = \max_{c \ne y_a} v_{ac} - v_{a y_a}, \qquad
    \mathrm{suggested}_a = \arg\max_c v_{ac}.

A detector trained on the noisy labels has partly fitted each wrong label it saw, which moves
that annotation's own probabilities towards its given label; its neighbours' labels are a vote
that its own fit does not sway. An annotation of the clean subset is scored against the training
annotations in the same way, so the calibration below holds for this score too.

``clean_neighbour_margin`` is the same margin over the k nearest annotations of the held-out clean
subset instead, whose labels are right (an annotation of the clean subset asks the others). Under
class-dependent noise the training neighbours' vote is itself corrupted: with 40% of a class's
boxes labelled as the next class (pair flips), a flipped box's training neighbours vote 60 : 40 at
best, and its given label is one that look-alike boxes often carry; the clean neighbours vote for
its true class.

The flagging threshold comes from annotations known to be correct (a held-out clean subset):
:func:`calibrate_threshold` takes the :math:`1 - \mathrm{fpr}` quantile of their scores, so at
most a fraction ``fpr`` of them would be flagged; :func:`mixture_threshold` reads the training
scores as a mixture of correct labels, scored as the clean ones are, and wrong ones, and flags
where a label is more likely wrong than right (:func:`flag_threshold` takes either). Neither the
noise type nor its rate is used.

The pure functions (:func:`annotation_scores`, :func:`neighbour_votes`,
:func:`calibrate_threshold`, :func:`clean_coco`, :func:`ranking_metrics`) work on arrays and
dicts; :func:`score_dataset` runs a detector
(:func:`~mmreweight.analysis.diagnostics.matched_logits`) over a dataloader,
:func:`with_set_scores` turns its records into ``neighbour_margin`` scores, and
:func:`sequential_loader_cfg` / :func:`clean_subset_loader_cfg` build the loaders
``tools/find_label_issues.py`` uses. :func:`issue_records` and :func:`read_flags` write and read
the per-annotation record files (the tool's and LabelIssueHook's); :func:`estimate_noise_rate`
estimates the share of wrong labels from the same scores.
"""
import copy
import json
import math
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from torch import Tensor

from mmreweight.analysis.diagnostics import _meta_hook_cfg, matched_logits
from mmreweight.datasets.embedded_detection_dataset import _kept_by_coco_dataset
from mmreweight.weighting.mentornet.dd import roc_auc

#: what ``clean_coco`` may do to a flagged annotation
ACTIONS = ('drop', 'relabel')
#: the per-annotation scores :func:`annotation_scores` can give
ANNOTATION_SCORES = ('margin', 'self_confidence')
#: every score the finder can give (the first is the default); the neighbour scores need the
#: whole training set's and clean subset's probabilities (:func:`with_set_scores`)
SCORES = ANNOTATION_SCORES + ('neighbour_margin', 'clean_neighbour_margin')
#: the neighbours a ``neighbour_margin`` asks by default
DEFAULT_NEIGHBOURS = 100
#: transforms that read the embedded benchmark's per-instance noise fields, and their stand-ins
#: for a dataset without them
_CLEAN_LABEL_TRANSFORMS = {'LoadCleanLabels': None, 'PackDetInputsWithCleanLabels': 'PackDetInputs'}


def _margins(values: Tensor, given: Tensor) -> Tensor:
    """Per row, the highest value of another column minus the given column's (minus the given
    column's alone with one column); ``values`` must be >= 0."""
    given_value = values.gather(1, given.unsqueeze(1)).squeeze(1)
    if values.shape[1] == 1:
        return -given_value
    return values.scatter(1, given.unsqueeze(1), 0.0).max(1).values - given_value


def annotation_scores(logits: Tensor, gt_index: Tensor, given_labels: Tensor,
                      score: str = 'margin') -> Dict[str, Tensor]:
    """Per-annotation label-issue scores from the logits of the anchors matched to each.

    Args:
        logits (Tensor[N, C]): classification logits of N anchors (one sigmoid per class).
        gt_index (Tensor[N]): the annotation each anchor is matched to, in ``[0, A)``; ``-1``
            for an anchor matched to none (ignored).
        given_labels (Tensor[A]): each annotation's given label, in ``[0, C)``.
        score: ``'margin'`` (the highest mean σ of another class minus the given label's; with
            one class, minus the given label's) or ``'self_confidence'`` (1 − the given label's);
            one of :data:`ANNOTATION_SCORES`.

    Returns:
        dict with, per annotation (length A): ``score`` (float64, see the module docstring),
        NaN without anchors; ``suggested_label`` (int64) = argmax
        over classes of the mean σ(logits) over its anchors (the lowest class on ties), -1
        without anchors; ``num_anchors`` (int64); ``probs`` (float64, A × C), the mean σ(logits)
        over its anchors (zeros without anchors).
    """
    if score not in ANNOTATION_SCORES:
        raise ValueError(f'score must be one of {ANNOTATION_SCORES}, got {score!r}'
                         + (' (it needs the whole training set: neighbour_scores)'
                            if score in SCORES else ''))
    if logits.dim() != 2 or gt_index.shape != logits.shape[:1]:
        raise ValueError(f'expected logits (N, C) and gt_index (N,), got {tuple(logits.shape)} '
                         f'and {tuple(gt_index.shape)}')
    num_anns, num_classes = given_labels.numel(), logits.shape[1]
    given = given_labels.reshape(-1).long()
    if num_anns and (given.min() < 0 or given.max() >= num_classes):
        raise ValueError(f'given_labels must lie in [0, {num_classes}), got '
                         f'[{int(given.min())}, {int(given.max())}]')
    matched = gt_index >= 0
    index = gt_index[matched].long()
    if index.numel() and index.max() >= num_anns:
        raise ValueError(f'gt_index {int(index.max())} is out of range for {num_anns} annotations')
    probs = logits[matched].double().sigmoid()
    sums = torch.zeros(num_anns, num_classes, dtype=torch.float64).index_add_(0, index, probs)
    counts = torch.bincount(index, minlength=num_anns)
    mean = sums / counts.clamp(min=1).unsqueeze(1)
    if score == 'margin':
        values = _margins(mean, given)
    else:
        values = 1.0 - mean.gather(1, given.unsqueeze(1)).squeeze(1)
    empty = counts == 0
    values[empty] = float('nan')
    suggested = mean.argmax(1) if num_classes else torch.zeros(num_anns, dtype=torch.long)
    suggested[empty] = -1
    return dict(score=values, suggested_label=suggested, num_anchors=counts, probs=mean)


def neighbour_votes(reference_probs: Tensor, reference_labels: Tensor, query_probs: Tensor,
                    k: int = DEFAULT_NEIGHBOURS, exclude_self: bool = False,
                    chunk: Optional[int] = None) -> Tensor:
    """For each query, the share of its ``k`` nearest reference annotations (Euclidean distance
    between class-probability vectors) whose given label is each class.

    Args:
        reference_probs (Tensor[R, C]), reference_labels (Tensor[R]): the reference annotations'
            mean class probabilities and given labels (in ``[0, C)``).
        query_probs (Tensor[Q, C]): the annotations to score.
        k: neighbours per query; fewer where the reference holds fewer (all of them).
        exclude_self: the queries are the references (Q = R, same order): query i does not
            count reference i.
        chunk: queries per distance block (default: blocks of about 2**24 distances).

    Returns:
        Tensor[Q, C] (float64): each row sums to 1. Of references equally far at the k-th
        distance, those with the lower indices count.
    """
    num_ref, num_classes = reference_probs.shape
    if reference_labels.shape != (num_ref, ):
        raise ValueError(f'reference_labels must have shape ({num_ref},), got '
                         f'{tuple(reference_labels.shape)}')
    if query_probs.dim() != 2 or query_probs.shape[1] != num_classes:
        raise ValueError(f'query_probs must have shape (Q, {num_classes}), got '
                         f'{tuple(query_probs.shape)}')
    if exclude_self and query_probs.shape[0] != num_ref:
        raise ValueError('exclude_self needs the queries to be the references (same length)')
    if k < 1:
        raise ValueError(f'k must be at least 1, got {k}')
    usable = num_ref - int(exclude_self)
    if usable < 1:
        raise ValueError(f'{num_ref} reference annotation(s): too few to ask a neighbour')
    k = min(k, usable)
    chunk = chunk or max(1, 2**24 // num_ref)
    ref = reference_probs.double()
    one_hot = torch.nn.functional.one_hot(reference_labels.long(), num_classes).double()
    votes = []
    for start in range(0, query_probs.shape[0], chunk):
        dist = torch.cdist(query_probs[start:start + chunk].double(), ref)
        if exclude_self:
            rows = torch.arange(dist.shape[0])
            dist[rows, rows + start] = float('inf')
        # the k nearest without sorting each row: all nearer than the k-th distance, then the
        # lowest-indexed of those at it
        kth = dist.kthvalue(k, dim=1, keepdim=True).values
        nearer, at_kth = dist < kth, dist == kth
        wanted = k - nearer.sum(1, keepdim=True)
        chosen = nearer | (at_kth & (at_kth.cumsum(1) <= wanted))
        votes.append(chosen.double() @ one_hot / k)
    return torch.cat(votes) if votes else torch.zeros(0, num_classes, dtype=torch.float64)


def neighbour_scores(reference: Mapping[int, Mapping[str, Any]],
                     queries: Optional[Mapping[int, Mapping[str, Any]]] = None,
                     k: int = DEFAULT_NEIGHBOURS) -> Dict[int, Dict[str, Any]]:
    """Neighbour-margin scores (module docstring) of :func:`score_dataset` records.

    Args:
        reference: the records whose given labels vote (the training annotations' for
            ``neighbour_margin``, the clean subset's for ``clean_neighbour_margin``); those
            without anchors are not asked.
        queries: the records to score against ``reference``; None scores ``reference`` itself,
            each annotation without itself.
        k: neighbours asked.

    Returns:
        Copies of the query records with ``score`` and ``suggested_label`` replaced by the
        neighbours' (NaN and -1 kept for an annotation without anchors).
    """
    asked = [a for a, r in reference.items() if r['num_anchors'] > 0]
    if not asked:
        raise ValueError('no reference annotation is matched to an anchor: nothing to ask')
    ref_probs = torch.from_numpy(np.stack([reference[a]['probs'] for a in asked]))
    ref_labels = torch.tensor([reference[a]['given_label'] for a in asked])
    own = queries is None
    queries = reference if own else queries
    out = {a: dict(r) for a, r in queries.items()}
    scored = asked if own else [a for a, r in queries.items() if r['num_anchors'] > 0]
    if scored:
        votes = neighbour_votes(ref_probs, ref_labels,
                                torch.from_numpy(np.stack([queries[a]['probs'] for a in scored])),
                                k=k, exclude_self=own)
        given = torch.tensor([queries[a]['given_label'] for a in scored])
        margins, suggested = _margins(votes, given), votes.argmax(1)
        for j, a in enumerate(scored):
            out[a].update(score=float(margins[j]), suggested_label=int(suggested[j]))
    return out


def _finite(scores: Sequence[float]) -> np.ndarray:
    out = np.asarray(scores, dtype=np.float64).reshape(-1)
    return out[np.isfinite(out)]


def calibrate_threshold(clean_scores: Sequence[float], target_fpr: float = 0.05) -> float:
    """The flagging threshold from the scores of annotations known to be correct.

    Returns the ``1 − target_fpr`` quantile of the finite ``clean_scores``, taken as the next
    observed score at or above it (numpy's ``method='higher'``), so that the share of clean
    scores strictly above the threshold (flagged by ``score > threshold``) is at most
    ``target_fpr``. NaN scores (annotations without anchors) are left out.

    Raises:
        ValueError: ``target_fpr`` outside [0, 1), or no finite clean score.
    """
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f'target_fpr must lie in [0, 1), got {target_fpr}')
    scores = _finite(clean_scores)
    if scores.size == 0:
        raise ValueError('no clean annotation has a score (none is matched to an anchor); the '
                         'clean subset is empty or its boxes are unlike the training boxes')
    return float(np.quantile(scores, 1.0 - target_fpr, method='higher'))


def estimate_noise_rate(train_scores: Sequence[float], clean_scores: Sequence[float],
                        target_fpr: float = 0.2) -> Dict[str, float]:
    r"""The share of mislabelled training annotations, from label-issue scores and those of a
    clean subset, without knowing the noise type or rate.

    With the threshold at the clean subset's :math:`1 - \mathrm{fpr}` quantile
    (:func:`calibrate_threshold`), a share :math:`f` of the training annotations flagged and a
    share :math:`\alpha` of the clean ones: if every mislabelled annotation scores above the
    threshold and correct ones as the clean subset does, :math:`f = r + (1 - r)\alpha`, so
    :math:`\hat r = (f - \alpha) / (1 - \alpha)`, clipped to [0, 1]. Mislabelled annotations
    below the threshold make it an underestimate. NaN scores are left out.

    Returns ``dict(noise_rate, threshold, train_flagged_fraction, clean_flagged_fraction)``.
    """
    train = np.asarray(train_scores, dtype=np.float64)
    clean = np.asarray(clean_scores, dtype=np.float64)
    train, clean = train[~np.isnan(train)], clean[~np.isnan(clean)]
    if not train.size or not clean.size:
        raise ValueError(f'need scored training and clean annotations, got {train.size} and '
                         f'{clean.size}')
    threshold = calibrate_threshold(clean.tolist(), target_fpr)
    f, alpha = float((train > threshold).mean()), float((clean > threshold).mean())
    rate = (f - alpha) / (1.0 - alpha) if alpha < 1.0 else 0.0
    return dict(noise_rate=min(max(rate, 0.0), 1.0), threshold=threshold,
                train_flagged_fraction=f, clean_flagged_fraction=alpha)


def mixture_threshold(train_scores: Sequence[float], clean_scores: Sequence[float],
                      max_clean_share: float = 0.5) -> Dict[str, float]:
    r"""The threshold that flags, by estimate, the most mislabelled annotations beyond correct
    ones, from the training annotations' scores and a clean subset's, without knowing the noise
    type or rate.

    The training scores are a mixture: a share :math:`r` of mislabelled annotations, the rest
    scored as the clean subset's. Flagging ``score > t`` flags a share :math:`f(t)` of the
    training annotations and a share :math:`\alpha(t)` of the clean subset's, so an estimated
    :math:`(1 - \hat r)\,\alpha(t)` of the training annotations are correct labels flagged and
    :math:`f(t) - (1 - \hat r)\,\alpha(t)` mislabelled ones flagged. The threshold maximises
    their difference,

    .. math::

        J(t) = f(t) - 2\,(1 - \hat r)\,\alpha(t),

    which flags where an annotation is more likely mislabelled than not (the Bayes rule at equal
    costs); where no threshold makes :math:`J` positive, as on clean data, it flags nothing.
    :math:`\hat r` is the largest :math:`(f(t) - \alpha(t)) / (1 - \alpha(t))` over the
    thresholds with :math:`\alpha(t) \le` ``max_clean_share``: a lower bound on :math:`r`
    (:func:`estimate_noise_rate` at one threshold), tight where the mislabelled annotations all
    score above :math:`t`. Of equally good thresholds the highest is taken. NaN scores are left
    out.

    Returns ``dict(threshold, noise_rate, train_flagged_fraction, clean_flagged_fraction,
    estimated_precision)``, the last the estimated share of mislabelled annotations among the
    flagged ones (NaN when none is flagged).

    Raises:
        ValueError: no finite training or clean score, or ``max_clean_share`` outside (0, 1).
    """
    if not 0.0 < max_clean_share < 1.0:
        raise ValueError(f'max_clean_share must lie in (0, 1), got {max_clean_share}')
    train, clean = np.sort(_finite(train_scores)), np.sort(_finite(clean_scores))
    if not train.size or not clean.size:
        raise ValueError(f'need scored training and clean annotations, got {train.size} and '
                         f'{clean.size}; the clean subset is empty or its boxes are unlike the '
                         'training boxes')
    # every distinct score, highest first: argmax then keeps the highest of equal thresholds
    cuts = np.unique(np.concatenate([train, clean]))[::-1]
    f = 1.0 - np.searchsorted(train, cuts, side='right') / train.size
    alpha = 1.0 - np.searchsorted(clean, cuts, side='right') / clean.size
    usable = alpha <= max_clean_share
    rate = float(np.clip(((f[usable] - alpha[usable]) / (1.0 - alpha[usable])).max(initial=0.0),
                         0.0, 1.0))
    gain = f - 2.0 * (1.0 - rate) * alpha
    best = int(gain.argmax())  # the top score (flags nothing, gain 0) is a candidate
    flagged, clean_flagged = float(f[best]), float(alpha[best])
    precision = ((flagged - (1.0 - rate) * clean_flagged) / flagged if flagged > 0
                 else math.nan)
    return dict(threshold=float(cuts[best]), noise_rate=rate, train_flagged_fraction=flagged,
                clean_flagged_fraction=clean_flagged, estimated_precision=precision)


#: how the flagging threshold is set from the clean subset (:func:`flag_threshold`)
CALIBRATIONS = ('fpr', 'mixture')


def flag_threshold(train_scores: Sequence[float], clean_scores: Sequence[float],
                   calibration: str = 'fpr', target_fpr: float = 0.05) -> Dict[str, Any]:
    """The flagging threshold as ``calibration`` asks: ``'fpr'``, the ``1 − target_fpr``
    quantile of the clean scores (:func:`calibrate_threshold`; flags a set share of correct
    labels, noise or not); ``'mixture'``, the training scores' mixture against the clean ones
    (:func:`mixture_threshold`; ``target_fpr`` unused).

    Returns ``dict(threshold, calibration, rule, clean_flagged_fraction, ...)`` with
    :func:`mixture_threshold`'s estimates for ``'mixture'`` and ``target_fpr`` for ``'fpr'``.
    """
    if calibration == 'fpr':
        threshold = calibrate_threshold(clean_scores, target_fpr)
        clean = _finite(clean_scores)
        return dict(threshold=threshold, calibration=calibration, target_fpr=target_fpr,
                    clean_flagged_fraction=float((clean > threshold).mean()),
                    rule='threshold = the (1 - target_fpr) quantile of the clean scores '
                         "(numpy method='higher'); flagged: score > threshold")
    if calibration == 'mixture':
        return dict(mixture_threshold(train_scores, clean_scores), calibration=calibration,
                    rule='threshold = argmax of f(t) - 2 (1 - r) alpha(t): f, alpha the shares '
                         'of training and clean scores above t, r the estimated noise rate; '
                         'flagged: score > threshold')
    raise ValueError(f'calibration must be one of {CALIBRATIONS}, got {calibration!r}')


def is_flagged(score: Optional[float], threshold: float) -> bool:
    """``score > threshold``; a missing or NaN score is never flagged."""
    return score is not None and not math.isnan(score) and score > threshold


def clean_coco(coco_dict: Mapping[str, Any], issues: Sequence[Mapping[str, Any]],
               threshold: float, action: str = 'drop') -> Dict[str, Any]:
    """A copy of a COCO dict with the flagged annotations dropped or relabelled.

    Args:
        coco_dict: the COCO annotation dict (``images``, ``annotations``, ``categories``, ...).
        issues: records with ``ann_id``, ``score`` and, for ``'relabel'``,
            ``suggested_category_id`` (the suggestion as a COCO category id).
        threshold: an annotation is flagged when its score is above it (:func:`is_flagged`).
        action: ``'drop'`` removes flagged annotations; ``'relabel'`` sets their
            ``category_id`` to the suggestion (unchanged where there is none).

    Returns:
        A deep copy; everything but the flagged annotations (images, categories, the other
        annotations and their order, other keys) is left as it was.
    """
    if action not in ACTIONS:
        raise ValueError(f'action must be one of {ACTIONS}, got {action!r}')
    flagged = {rec['ann_id']: rec for rec in issues if is_flagged(rec['score'], threshold)}
    out = copy.deepcopy(dict(coco_dict))
    if action == 'drop':
        out['annotations'] = [a for a in out['annotations'] if a['id'] not in flagged]
    else:
        for ann in out['annotations']:
            suggestion = flagged.get(ann['id'], {}).get('suggested_category_id')
            if suggestion is not None:
                ann['category_id'] = suggestion
    return out


def ranking_metrics(scores: Sequence[float], is_noisy: Sequence[bool]) -> Dict[str, Any]:
    """How well the scores rank the truly mislabelled annotations first.

    Annotations with a NaN score are left out (counted in ``unscored``). With k = the number of
    noisy annotations among the rest: ``auc`` = P(a noisy annotation scores above a clean one),
    ties counted half (Mann–Whitney; NaN when either group is empty), ``precision_at_k`` and
    ``recall_at_k`` of the k highest scores (ties at the cut broken by order of appearance;
    they are equal here, as the cut holds k annotations; NaN when k = 0).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    noisy = np.asarray(is_noisy, dtype=bool).reshape(-1)
    if scores.shape != noisy.shape:
        raise ValueError(f'scores and is_noisy differ in length: {scores.size} vs {noisy.size}')
    scored = ~np.isnan(scores)
    s, y = scores[scored], noisy[scored]
    k = int(y.sum())
    top = np.argsort(-s, kind='stable')[:k]
    hits = int(y[top].sum())
    return dict(annotations=int(s.size), noisy=k, unscored=int((~scored).sum()),
                auc=roc_auc(torch.from_numpy(s), torch.from_numpy(y)),
                k=k, precision_at_k=hits / k if k else float('nan'),
                recall_at_k=hits / k if k else float('nan'))


def flagged_annotations(scored: Mapping[int, Mapping[str, Any]],
                         threshold: float) -> Dict[int, int]:
    """``{ann_id: suggested label index}`` of the annotations of ``scored`` (as
    :func:`score_dataset` returns) whose score is above ``threshold``."""
    return {ann_id: int(rec['suggested_label']) for ann_id, rec in scored.items()
            if is_flagged(rec['score'], threshold)}


def noise_metrics(scored: Mapping[int, Mapping[str, Any]], coco_dict: Mapping[str, Any],
                  cat_ids: Sequence[int], threshold: float) -> Optional[Dict[str, Any]]:
    """How the scores and the flags fare against a benchmark's record of the corrupted labels
    (COCO annotations with ``noisy`` and ``clean_category_id``, as the embedded benchmark
    writes); None for a COCO file without that record.

    Returns :func:`ranking_metrics` of the scored annotations, and for the flagged ones
    (score > ``threshold``): ``flagged``, ``flagged_precision`` (share of them that are noisy),
    ``flagged_recall`` (share of the noisy annotations flagged), ``clean_flagged_fraction``
    (share of the clean annotations flagged) and ``suggestion_accuracy`` (share of the flagged
    noisy annotations whose suggested label is the true one; NaN when none is flagged).
    """
    anns = {a['id']: a for a in coco_dict['annotations']}
    ids = [i for i in scored if i in anns]
    if not ids or not all('noisy' in anns[i] for i in ids):
        return None
    noisy = np.array([bool(anns[i]['noisy']) for i in ids])
    scores = np.array([scored[i]['score'] for i in ids], dtype=np.float64)
    out = ranking_metrics(scores, noisy)
    flagged = np.array([is_flagged(s, threshold) for s in scores])
    hits = flagged & noisy
    suggested = {i: scored[i]['suggested_label'] for i, hit in zip(ids, hits) if hit}
    out.update(flagged=int(flagged.sum()),
               flagged_precision=float(hits.sum() / flagged.sum()) if flagged.any() else math.nan,
               flagged_recall=float(hits.sum() / noisy.sum()) if noisy.any() else math.nan,
               clean_flagged_fraction=(float((flagged & ~noisy).sum() / (~noisy).sum())
                                       if (~noisy).any() else math.nan),
               suggestion_accuracy=label_accuracy(suggested, coco_dict, cat_ids))
    return out


def label_accuracy(labels: Mapping[int, int], coco_dict: Mapping[str, Any],
                   cat_ids: Sequence[int]) -> float:
    """Share of ``labels`` (``{ann_id: label index}``, e.g. the relabelled annotations) that
    are the annotation's true class, from the benchmark's ``clean_category_id``; NaN when
    ``labels`` is empty."""
    if not labels:
        return math.nan
    anns = {a['id']: a for a in coco_dict['annotations']}
    return float(np.mean([cat_ids[label] == anns[a].get('clean_category_id')
                          for a, label in labels.items()]))


def issue_records(coco_dict: Mapping[str, Any], scored: Mapping[int, Mapping[str, Any]],
                  cat_ids: Sequence[int], threshold: float,
                  classes: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """One record per annotation of ``coco_dict``, in file order: the schema of
    ``tools/find_label_issues.py``'s ``label_issues.json`` and of LabelIssueHook's
    ``label_issues_iter<K>.json``, which :func:`read_flags` reads back.

    Each record has ``image_id``, ``ann_id``, ``bbox``, ``given_label`` and ``suggested_label``
    (COCO category ids; the suggestion None where unscored or without anchors), ``score`` (None
    for NaN), ``num_anchors``, ``scored`` and ``flagged`` (:func:`is_flagged`); with ``classes``
    also ``given_name`` and ``suggested_name``; where the annotations carry the benchmark's
    ``noisy`` field, ``noisy`` too.
    """
    noisy_field = any('noisy' in a for a in coco_dict['annotations'])
    name = dict(zip(cat_ids, classes)) if classes is not None else {}
    out = []
    for ann in coco_dict['annotations']:
        s = scored.get(ann['id'])
        rec = dict(image_id=ann['image_id'], ann_id=ann['id'], bbox=ann['bbox'],
                   given_label=ann['category_id'], suggested_label=None, score=None,
                   num_anchors=0, scored=s is not None, flagged=False)
        if s is not None:
            rec['score'] = None if math.isnan(s['score']) else s['score']
            if s['suggested_label'] >= 0:
                rec['suggested_label'] = cat_ids[s['suggested_label']]
            rec['num_anchors'] = s['num_anchors']
            rec['flagged'] = is_flagged(rec['score'], threshold)
        if classes is not None:
            rec['given_name'] = name.get(rec['given_label'])
            rec['suggested_name'] = name.get(rec['suggested_label'])
        if noisy_field:
            rec['noisy'] = bool(ann.get('noisy', False))
        out.append(rec)
    return out


#: LabelIssueHook's record file of its scoring point at iteration K, in its work dir
ROUND_FILE = 'label_issues_iter{}.json'
_ROUND_FILE_PATTERN = re.compile('^' + re.escape(ROUND_FILE).replace(r'\{\}', r'(\d+)') + '$')


def issue_file(path: str) -> str:
    """``path`` if it is a file, else the record file of the latest scoring point in the work
    dir ``path`` (``label_issues_iter<K>.json`` with the largest K)."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f'{path} does not exist; give the label_issues.json of tools/find_label_issues.py, '
            'a label_issues_iter<K>.json of LabelIssueHook, or the work dir holding those')
    rounds = sorted((int(m.group(1)), name) for name in os.listdir(path)
                    if (m := _ROUND_FILE_PATTERN.match(name)))
    if not rounds:
        raise FileNotFoundError(
            f'{path} holds no label_issues_iter<K>.json: it is not the work dir of a run with '
            'LabelIssueHook past a scoring point; give that work dir or a record file')
    return os.path.join(path, rounds[-1][1])


def read_flags(path: str, coco_dict: Mapping[str, Any], cat_ids: Sequence[int]
               ) -> Tuple[Dict[int, int], Dict[str, Any]]:
    """The flags of a record file (:func:`issue_file` of ``path``) for the training set
    ``coco_dict``: ``({ann_id: suggested label index}, summary)``.

    The summary holds the file, its threshold, the number of flags and, where ``coco_dict``
    records the benchmark's flips, :func:`noise_metrics` of the file's scores.

    Raises:
        ValueError: the file holds no records, or records of annotations that ``coco_dict``
            does not have (written for another training set), or a flagged record whose
            suggestion is not one of ``cat_ids``.
    """
    path = issue_file(path)
    with open(path) as f:
        data = json.load(f)
    records = data.get('issues') if isinstance(data, dict) else None
    if not records or 'threshold' not in data:
        raise ValueError(f'{path} holds no label-issue records (a dict with "threshold" and '
                         '"issues", as tools/find_label_issues.py and LabelIssueHook write)')
    known = {a['id'] for a in coco_dict['annotations']}
    foreign = [r['ann_id'] for r in records if r['ann_id'] not in known]
    if foreign:
        raise ValueError(f'{path} has {len(foreign)} annotations that the training set lacks '
                         f'(e.g. ann_id {foreign[0]}): it was written for another training set')
    index = {c: i for i, c in enumerate(cat_ids)}
    scored = {}
    for r in records:
        if not r.get('scored', True):
            continue
        suggestion = index.get(r['suggested_label'], -1)
        if r['flagged'] and suggestion < 0:
            raise ValueError(f'{path}: flagged annotation {r["ann_id"]} suggests '
                             f'{r["suggested_label"]!r}, not one of the categories {list(cat_ids)}')
        scored[r['ann_id']] = dict(score=math.nan if r['score'] is None else float(r['score']),
                                   suggested_label=suggestion)
    flags = {a: int(scored[a]['suggested_label']) for a in
             (r['ann_id'] for r in records if r['flagged'])}
    summary = dict(source=os.path.abspath(path), threshold=data['threshold'],
                   annotations=len(scored), flagged=len(flags))
    truth = noise_metrics(scored, coco_dict, cat_ids, data['threshold'])
    if truth is not None:
        summary['truth'] = truth
    return flags, summary


def sequential_loader_cfg(loader_cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """A dataloader config that visits every image once, in dataset order: ``DefaultSampler``
    without shuffling, no batch sampler (an ``AspectRatioBatchSampler`` would regroup them),
    last partial batch kept, no persistent workers (one pass has no use for them, and torch
    refuses them without workers). The pipeline is kept as it is."""
    cfg = (loader_cfg.to_dict() if hasattr(loader_cfg, 'to_dict')
           else copy.deepcopy(dict(loader_cfg)))
    cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
    cfg.pop('batch_sampler', None)
    cfg['drop_last'] = False
    cfg['persistent_workers'] = False
    return cfg


def _dataset_type(dataset_cfg: Mapping[str, Any]) -> str:
    return str(dataset_cfg.get('type', '')).split('.')[-1]


def _without_clean_label_transforms(pipeline: Sequence[Mapping[str, Any]]) -> List[dict]:
    out = []
    for step in pipeline:
        name = str(step.get('type', '')).split('.')[-1]
        if name in _CLEAN_LABEL_TRANSFORMS:
            if _CLEAN_LABEL_TRANSFORMS[name] is None:
                continue
            step = dict(step, type=_CLEAN_LABEL_TRANSFORMS[name])
        out.append(dict(step))
    return out


def clean_subset_loader_cfg(cfg: Config, clean_ann_file: Optional[str] = None,
                            clean_img_dir: Optional[str] = None,
                            classes: Optional[Sequence[str]] = None
                            ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(sequential dataloader config, description) of the clean subset that calibrates the
    threshold, the first of:

    1. ``clean_ann_file``: a COCO file of annotations known to be correct, images under
       ``clean_img_dir`` (required with it), classes ``classes`` (the training set's); the
       training pipeline without the benchmark's noise-flag transforms;
    2. the ``clean_dataloader`` of the config's MetaReweightHook;
    3. the ``meta`` split of the config's embedded benchmark.

    Raises:
        ValueError: none of them is available (the message says how to give one).
    """
    train = cfg.train_dataloader
    if clean_ann_file is not None:
        if not os.path.isfile(clean_ann_file):
            raise FileNotFoundError(f'--clean-ann-file {clean_ann_file} does not exist; give a '
                                    'COCO json of annotations known to be correct')
        if clean_img_dir is None:
            raise ValueError('--clean-ann-file needs --clean-img-dir (the folder its images\' '
                             'file_name are relative to)')
        dataset = dict(type='CocoDataset', ann_file=os.path.abspath(clean_ann_file),
                       data_root='', data_prefix=dict(img=os.path.abspath(clean_img_dir)),
                       filter_cfg=dict(filter_empty_gt=True),
                       pipeline=_without_clean_label_transforms(train.dataset.pipeline))
        if classes is not None:
            dataset['metainfo'] = dict(classes=tuple(classes))
        return (sequential_loader_cfg(dict(train, dataset=dataset)),
                dict(source='--clean-ann-file', ann_file=os.path.abspath(clean_ann_file)))
    hook = _meta_hook_cfg(cfg)
    if hook is not None and hook.get('clean_dataloader') is not None:
        loader = hook['clean_dataloader']
        if not isinstance(loader, Mapping):
            raise ValueError('the MetaReweightHook clean_dataloader is not a config dict; '
                             'give the clean subset with --clean-ann-file')
        return sequential_loader_cfg(loader), dict(source='MetaReweightHook clean_dataloader')
    dataset = train.get('dataset', {})
    if _dataset_type(dataset) == 'EmbeddedDetectionDataset':
        meta = dict(copy.deepcopy(dataset), split='meta')
        return (sequential_loader_cfg(dict(train, dataset=meta)),
                dict(source="embedded benchmark 'meta' split"))
    raise ValueError('no clean subset to calibrate the threshold on: the config has no '
                     'MetaReweightHook clean_dataloader and its training set is not an embedded '
                     'benchmark (with a meta split); pass --clean-ann-file FILE --clean-img-dir '
                     'DIR with annotations known to be correct')


def _coco_ann_ids(data_info: Mapping[str, Any], anns: Sequence[Mapping[str, Any]],
                  img_info: Mapping[str, Any], cat_ids: Sequence[int]) -> List[int]:
    """Ids of an image's ground-truth (non-ignored) instances, in the dataset's order."""
    instances = [i for i in data_info['instances'] if not i.get('ignore_flag', 0)]
    if instances and all('ann_id' in i for i in instances):
        return [int(i['ann_id']) for i in instances]
    # mmdet's CocoDataset keeps the file's order; crowd boxes become ignored instances
    kept = [a for a in anns if _kept_by_coco_dataset(a, img_info, cat_ids)
            and not a.get('iscrowd', False)]
    if len(kept) != len(instances):
        raise RuntimeError(f'image {data_info["img_id"]}: the dataset holds {len(instances)} '
                           f'boxes, the COCO file {len(kept)}')
    return [int(a['id']) for a in kept]


def ann_ids_by_image(dataset, coco_dict: Mapping[str, Any]) -> Dict[int, List[int]]:
    """For each image of a COCO-style mmdet dataset, the annotation ids of its ground-truth
    instances in the order the pipeline packs them."""
    anns: Dict[int, List[Mapping[str, Any]]] = {}
    for ann in coco_dict['annotations']:
        anns.setdefault(ann['image_id'], []).append(ann)
    images = {img['id']: img for img in coco_dict['images']}
    cat_ids = list(getattr(dataset, 'cat_ids', []))
    out = {}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        out[info['img_id']] = _coco_ann_ids(info, anns.get(info['img_id'], []),
                                            images[info['img_id']], cat_ids)
    return out


def load_coco(path: str) -> Dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def score_dataset(detector, loader, coco_dict: Mapping[str, Any], log=None,
                  score: str = 'margin') -> Dict[int, Dict[str, Any]]:
    """Run an anchor-head ``detector`` (in its current mode; the finder uses eval) over every
    batch of ``loader`` (a COCO-style dataset, see :func:`sequential_loader_cfg`) and score each
    annotation it packs (``score``: see :func:`annotation_scores`; for the neighbour scores
    the records hold the margin until :func:`with_set_scores` asks the neighbours).

    Returns ``{ann_id: dict(image_id, given_label, score, suggested_label, num_anchors,
    probs)}`` (labels are class indices of the dataset; score NaN, suggestion -1 without
    anchors; ``probs`` the mean class probabilities, float32).

    Raises:
        RuntimeError: the pipeline dropped or added boxes (a random crop, say), so boxes cannot
            be matched to the annotation file; or an image was seen twice.
    """
    if not getattr(detector.bbox_head, 'use_sigmoid_cls', False):
        raise ValueError('the label-issue score needs a sigmoid classifier '
                         '(loss_cls use_sigmoid=True, as RetinaNet)')
    if score not in SCORES:
        raise ValueError(f'score must be one of {SCORES}, got {score!r}')
    per_annotation = score if score in ANNOTATION_SCORES else 'margin'
    ids = ann_ids_by_image(loader.dataset, coco_dict)
    out: Dict[int, Dict[str, Any]] = {}
    seen = set()
    for step, data in enumerate(loader):
        batch = matched_logits(detector, data)
        scores = annotation_scores(batch['logits'], batch['gt_index'], batch['gt_labels'],
                                   per_annotation)
        probs = scores['probs'].float().numpy()
        first = 0
        for img_id, n in zip(batch['img_ids'], batch['num_gts']):
            if img_id in seen:
                raise RuntimeError(f'image {img_id} came twice: the loader is not sequential')
            seen.add(img_id)
            if len(ids[img_id]) != n:
                raise RuntimeError(
                    f'image {img_id}: the pipeline packed {n} boxes, the annotation file has '
                    f'{len(ids[img_id])}; remove transforms that drop or add boxes (e.g. a '
                    'random crop) from the training pipeline with --cfg-options')
            for j, ann_id in enumerate(ids[img_id]):
                g = first + j
                out[ann_id] = dict(image_id=img_id, given_label=int(batch['gt_labels'][g]),
                                   score=float(scores['score'][g]),
                                   suggested_label=int(scores['suggested_label'][g]),
                                   num_anchors=int(scores['num_anchors'][g]),
                                   probs=probs[g])
            first += n
        if log is not None and (step + 1) % 20 == 0:
            log(f'{step + 1} batches, {len(out)} annotations scored')
    return out


def with_set_scores(train: Mapping[int, Mapping[str, Any]],
                    clean: Mapping[int, Mapping[str, Any]], score: str,
                    neighbours: int = DEFAULT_NEIGHBOURS
                    ) -> Tuple[Mapping[int, Mapping[str, Any]], Mapping[int, Mapping[str, Any]]]:
    """The training and clean-subset records of :func:`score_dataset` as ``score`` asks:
    unchanged for a per-annotation score; for ``'neighbour_margin'``, both scored by their
    ``neighbours`` nearest training annotations, for ``'clean_neighbour_margin'`` by their
    nearest clean-subset annotations, a clean one without itself (:func:`neighbour_scores`)."""
    if score in ANNOTATION_SCORES:
        return train, clean
    if score == 'neighbour_margin':
        return neighbour_scores(train, k=neighbours), neighbour_scores(train, clean, k=neighbours)
    if score == 'clean_neighbour_margin':
        return neighbour_scores(clean, train, k=neighbours), neighbour_scores(clean, k=neighbours)
    raise ValueError(f'score must be one of {SCORES}, got {score!r}')


__all__ = ['ACTIONS', 'ANNOTATION_SCORES', 'SCORES', 'DEFAULT_NEIGHBOURS', 'annotation_scores',
           'neighbour_votes', 'neighbour_scores', 'with_set_scores', 'calibrate_threshold',
           'estimate_noise_rate', 'mixture_threshold', 'CALIBRATIONS', 'flag_threshold',
           'is_flagged',
           'clean_coco', 'ranking_metrics', 'flagged_annotations', 'noise_metrics',
           'label_accuracy', 'issue_records', 'issue_file', 'read_flags', 'sequential_loader_cfg',
           'clean_subset_loader_cfg',
           'ann_ids_by_image', 'load_coco', 'score_dataset']
