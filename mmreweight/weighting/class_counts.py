"""Per-class instance counts of a detection training set (for class-balanced losses)."""
from typing import Optional, Sequence

import torch
from torch.utils.data import Subset


def count_instances_per_class(dataset, num_classes: Optional[int] = None) -> torch.Tensor:
    """Number of annotated, non-ignored instances of each class in ``dataset``.

    Reads mmdet's data-info format, ``dataset.get_data_info(i)['instances']``, each instance's
    ``bbox_label``, skipping instances with a true ``ignore_flag`` (e.g. COCO crowd boxes).
    Dataset wrappers are unwrapped: ``ConcatDataset`` parts are summed; wrappers that repeat or
    resample the same images (``RepeatDataset``, ``ClassBalancedDataset``,
    ``MultiImageMixDataset``) are counted once, since the effective number of samples of
    Cui et al. counts distinct samples; a ``torch.utils.data.Subset`` counts its indices.

    Args:
        dataset: an mmdet/mmengine dataset or wrapper.
        num_classes: length of the result; default ``len(dataset.metainfo['classes'])``.

    Returns:
        ``(num_classes,)`` int64 counts.

    Raises:
        ValueError: a ``bbox_label`` outside ``[0, num_classes)``.
    """
    if num_classes is None:
        num_classes = len(dataset.metainfo['classes'])
    counts = torch.zeros(num_classes, dtype=torch.long)
    for labels in _labels_per_image(dataset, None):
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f'bbox_label outside [0, {num_classes}): {labels.tolist()}')
        counts += torch.bincount(labels, minlength=num_classes)
    return counts


def _labels_per_image(dataset, indices: Optional[Sequence[int]]):
    if isinstance(dataset, Subset):
        picked = dataset.indices if indices is None else [dataset.indices[i] for i in indices]
        yield from _labels_per_image(dataset.dataset, picked)
    elif indices is None and hasattr(dataset, 'datasets'):  # ConcatDataset
        for part in dataset.datasets:
            yield from _labels_per_image(part, None)
    elif indices is None and hasattr(dataset, 'dataset'):  # repeating / resampling wrappers
        yield from _labels_per_image(dataset.dataset, None)
    else:
        for i in range(len(dataset)) if indices is None else indices:
            instances = dataset.get_data_info(i).get('instances', [])
            yield [inst['bbox_label'] for inst in instances if not inst.get('ignore_flag', 0)]
