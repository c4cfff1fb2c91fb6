"""Independent random streams per purpose and split, all derived from the benchmark's seed.

Separate streams keep variants comparable: label noise has its own stream, so a noisy train split
has the same images and boxes as the clean one; val/test/meta have their own streams, so they do
not change with train-only options (noise, imbalance).
"""
from typing import Optional

import numpy as np

from .benchmark_config import SPLITS

_PURPOSES = ('partition', 'layout', 'noise')


def random_stream(seed: int, purpose: str, split: Optional[str] = None) -> np.random.Generator:
    """A generator for ``purpose`` (``'partition'``, ``'layout'`` or ``'noise'``) and ``split``.

    Streams are children of ``SeedSequence(seed)`` keyed by (purpose, split), so they are
    statistically independent and each is reproducible on its own.
    """
    key = (_PURPOSES.index(purpose),) if split is None else \
        (_PURPOSES.index(purpose), SPLITS.index(split))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
