"""Partition of the source objects across splits, so that no object is shared by two splits."""
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from .class_counts import apportion


def partition_pool(labels: np.ndarray, usable: np.ndarray, num_classes: int,
                   split_weights: Mapping[str, float], rng: np.random.Generator,
                   class_names: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Deal the usable source objects of every class to the splits, in proportion to their weights.

    Per class, the objects are shuffled and cut into consecutive runs whose lengths are
    :func:`apportion`-ed from the split weights, so every split sees every class and the splits'
    object sets are disjoint by construction.

    Args:
        labels: (N,) class index per source object.
        usable: (N,) bool, objects that may be used (e.g. not blank).
        num_classes: C.
        split_weights: split name -> weight (e.g. its expected number of objects), in split order.
        rng: random generator.
        class_names: optional names for error messages.

    Returns:
        split name -> sorted int64 indices into the source.

    Raises:
        ValueError: some class has too few objects to give every split at least one.
    """
    names = list(split_weights)
    weights = np.array([split_weights[s] for s in names], dtype=np.float64)
    parts = {s: [] for s in names}
    for c in range(num_classes):
        members = rng.permutation(np.flatnonzero((labels == c) & usable))
        shares = apportion(len(members), weights)
        if (shares == 0).any():
            label = class_names[c] if class_names is not None else c
            raise ValueError(
                f'the source has only {len(members)} usable object(s) of class {label!r}, too few '
                f'to give each of the splits {names} at least one (shares {shares.tolist()}); '
                'use a larger source')
        for split, run in zip(names, np.split(members, np.cumsum(shares)[:-1])):
            parts[split].append(run)
    return {s: np.sort(np.concatenate(parts[s])).astype(np.int64) for s in names}
