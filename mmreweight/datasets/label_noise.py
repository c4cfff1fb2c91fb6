"""Synthetic label noise for the train split: uniform (symmetric) and pair-flip."""
import numpy as np


def num_flips(num_labels: int, noise_rate: float) -> int:
    """``round(noise_rate * num_labels)``, halves rounded up (not Python's round-half-to-even)."""
    return int(np.floor(noise_rate * num_labels + 0.5))


def flip_labels(labels: np.ndarray, noise_type: str, noise_rate: float, num_classes: int,
                rng: np.random.Generator) -> np.ndarray:
    """Corrupt exactly :func:`num_flips` labels, chosen uniformly without replacement.

    An exact count (rather than an independent coin per label) makes the realised noise rate equal
    the requested one up to rounding, however small the split.

    * ``'uniform'``: a flipped label moves to one of the other ``C - 1`` classes, uniformly.
    * ``'pairflip'``: a flipped label ``c`` becomes ``(c + 1) mod C``.

    Every flipped label differs from its original, so the fraction of changed labels is the noise
    rate (the "uniform" convention that never flips to the same class).

    Args:
        labels: (N,) class indices in ``[0, num_classes)``.
        noise_type: ``'none'``, ``'uniform'`` or ``'pairflip'``.
        noise_rate: in ``[0, 1)``.
        num_classes: C; must be >= 2 unless no label is flipped.
        rng: the random generator (consumed only when labels are flipped).

    Returns:
        (N,) int64 noisy labels (a new array).
    """
    labels = np.asarray(labels, dtype=np.int64)
    noisy = labels.copy()
    if noise_type not in ('none', 'uniform', 'pairflip'):
        raise ValueError(f'unknown noise_type {noise_type!r}')
    if not 0.0 <= noise_rate < 1.0:
        raise ValueError(f'noise_rate must be in [0, 1), got {noise_rate}')
    count = 0 if noise_type == 'none' else num_flips(len(labels), noise_rate)
    if count == 0:
        return noisy
    if num_classes < 2:
        raise ValueError('label noise needs at least two classes')
    flipped = rng.choice(len(labels), size=count, replace=False)
    if noise_type == 'uniform':
        offset = rng.integers(1, num_classes, size=count)  # never 0: always a different class
    else:
        offset = np.ones(count, dtype=np.int64)
    noisy[flipped] = (labels[flipped] + offset) % num_classes
    return noisy
