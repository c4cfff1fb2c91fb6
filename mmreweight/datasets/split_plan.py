"""What goes into one split: objects per image, and each object's source, class and size."""
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .class_counts import class_counts


@dataclass(frozen=True)
class SplitPlan:
    """The objects of one split, before rendering.

    Objects are listed image by image: image ``i`` owns the next ``objects_per_image[i]`` entries.

    Attributes:
        split: the split's name.
        image_ids: (n,) COCO image ids.
        objects_per_image: (n,) number of objects per image.
        source_index: (T,) index of each object's image in the source pool.
        labels: (T,) each object's true class.
        long_side: (T,) the wanted longer side of each object's box, in pixels.
    """
    split: str
    image_ids: np.ndarray
    objects_per_image: np.ndarray
    source_index: np.ndarray
    labels: np.ndarray
    long_side: np.ndarray

    @property
    def image_starts(self) -> np.ndarray:
        """(n + 1,) offsets: image ``i``'s objects are ``[starts[i], starts[i + 1])``."""
        return np.concatenate([[0], np.cumsum(self.objects_per_image)])


def plan_split(split: str, pool: np.ndarray, source_labels: np.ndarray, num_classes: int,
               num_images: int, first_image_id: int, min_objects: int, max_objects: int,
               min_size: int, max_size: int, max_reuse: int, imbalance_ratio: float,
               rng: np.random.Generator, class_names: Sequence[str]) -> SplitPlan:
    """Draw a split's objects from its own part of the source pool.

    1. Each image gets ``U{min_objects..max_objects}`` objects (T in total); this is the first
       draw, so it does not depend on the class profile.
    2. Per class, :func:`~.class_counts.class_counts` objects (balanced, or long-tailed when
       ``imbalance_ratio > 1``); they are taken from the split's pool objects of that class by
       cycling through fresh random permutations, so every pool object is used before any is
       reused, and none more than ``ceil(count / pool size)`` times.
    3. The T objects are shuffled into the images and each gets a size ``U{min_size..max_size}``.

    Raises:
        ValueError: the split needs more objects of a class than ``max_reuse`` uses of its pool
            allow, or is too small to hold every class.
    """
    objects_per_image = rng.integers(min_objects, max_objects + 1, size=num_images)
    total = int(objects_per_image.sum())
    try:
        counts = class_counts(total, num_classes, imbalance_ratio)
    except ValueError as err:
        raise ValueError(f'split {split!r}: {err}') from None
    chosen = []
    for c, count in enumerate(counts):
        members = pool[source_labels[pool] == c]
        if count > len(members) * max_reuse:
            raise ValueError(
                f'split {split!r} needs {count} objects of class {class_names[c]!r} but owns '
                f'{len(members)} source objects of that class, which max_reuse={max_reuse} '
                f'stretches to {len(members) * max_reuse}; lower {split}_images or raise max_reuse')
        rounds = -(-int(count) // len(members))
        chosen.append(np.concatenate([rng.permutation(members) for _ in range(rounds)])[:count])
    source_index = np.concatenate(chosen)
    order = rng.permutation(total)
    source_index = source_index[order]
    return SplitPlan(
        split=split,
        image_ids=np.arange(first_image_id, first_image_id + num_images, dtype=np.int64),
        objects_per_image=objects_per_image.astype(np.int64),
        source_index=source_index,
        labels=source_labels[source_index].astype(np.int64),
        long_side=rng.integers(min_size, max_size + 1, size=total).astype(np.int64),
    )
