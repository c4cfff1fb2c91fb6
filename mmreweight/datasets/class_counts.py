"""How many objects of each class a split gets: balanced, or an exponential long tail."""
import numpy as np


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (largest-remainder method).

    Each share is ``floor(total * w / sum(w))`` plus one for the largest fractional remainders
    (ties go to the lower index), so the shares sum to ``total`` exactly and each differs from its
    exact proportional value by less than one.

    Args:
        total: a non-negative integer.
        weights: (K,) non-negative weights with a positive sum.

    Returns:
        (K,) int64 shares summing to ``total``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f'weights must be non-negative with a positive sum, got {weights}')
    exact = total * weights / weights.sum()
    shares = np.floor(exact).astype(np.int64)
    remainder = int(total - shares.sum())
    # stable sort: equal remainders keep index order, so the result is deterministic
    order = np.argsort(-(exact - shares), kind='stable')
    shares[order[:remainder]] += 1
    return shares


def long_tail_weights(num_classes: int, imbalance_ratio: float) -> np.ndarray:
    """Exponential long-tail profile of Cui et al. (CVPR 2019): ``ratio ** (-c / (C - 1))``.

    Class 0 is the head (weight 1) and class ``C - 1`` the tail (weight ``1 / ratio``), so the
    largest-to-smallest ratio is ``imbalance_ratio``. A ratio of 1 gives uniform weights.

    Args:
        num_classes: C >= 1.
        imbalance_ratio: >= 1.

    Returns:
        (C,) float64 weights.
    """
    if num_classes == 1:
        return np.ones(1)
    c = np.arange(num_classes, dtype=np.float64)
    return float(imbalance_ratio) ** (-c / (num_classes - 1))


def class_counts(total: int, num_classes: int, imbalance_ratio: float = 1.0) -> np.ndarray:
    """Objects per class for a split of ``total`` objects.

    Balanced when ``imbalance_ratio == 1`` (counts differ by at most one); otherwise the
    :func:`long_tail_weights` profile scaled so that the counts sum to ``total``, i.e. class ``c``
    keeps ``n_max * ratio ** (-c / (C - 1))`` objects with ``n_max`` set by ``total``.

    Raises:
        ValueError: some class would get no object (``total`` too small for C classes at this
            ratio).
    """
    counts = apportion(total, long_tail_weights(num_classes, imbalance_ratio))
    if (counts == 0).any():
        empty = np.flatnonzero(counts == 0).tolist()
        raise ValueError(f'{total} objects are too few for {num_classes} classes at imbalance '
                         f'ratio {imbalance_ratio:g}: class(es) {empty} would get none; use more '
                         'images')
    return counts
