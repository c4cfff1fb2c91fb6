"""Splitting a clean (meta) subset off a training set, and checking two sets do not overlap.

``CleanSplit`` is a registered dataset *builder*: the same arguments with ``part='clean'`` in the
hook's ``clean_dataloader`` and ``part='train'`` in ``train_dataloader`` give complementary subsets
(the split is a deterministic function of the dataset, ``num``/``fraction`` and ``seed``)::

    split = dict(num=100, seed=0)
    train_dataloader = dict(dataset=dict(type='mmreweight.CleanSplit', part='train',
                                         dataset=<train dataset>, **split), ...)
    custom_hooks = [dict(type='mmreweight.MetaReweightHook', ...,
                         clean_dataloader=dict(dataset=dict(type='mmreweight.CleanSplit',
                                                            part='clean', dataset=<same>, **split),
                                               ...))]

The hook checks at ``before_train`` that no training image is in the clean set, however the two
were configured: by resolved file path and by content, so a symlinked root, a relative path or a
renamed copy of a training image is caught too.
"""
import hashlib
import math
import os
from typing import Dict, Hashable, List, NamedTuple, Optional, Set, Tuple, Union

import numpy as np

from mmreweight.registry import DATASETS

_DISJOINT_FIX = ("a held-out clean subset must be disjoint from the training set (use "
                 "mmreweight.CleanSplit with part='train' / part='clean', or the benchmark's "
                 "'meta' split)")


def _image_classes(dataset, index: int) -> Set[int]:
    info = dataset.get_data_info(index)
    return {int(i['bbox_label']) for i in info.get('instances', [])
            if not i.get('ignore_flag', 0) and int(i.get('bbox_label', -1)) >= 0}


def split_clean_indices(dataset, num: Optional[int] = None, fraction: Optional[float] = None,
                        seed: int = 0, class_balanced: bool = True) -> List[int]:
    """Indices of a clean subset of ``dataset``: ``num`` images, or ``fraction`` of them (rounded
    up), drawn with ``seed``. Only images with at least one (non-ignored) object are drawn.

    ``class_balanced``: round-robin over classes, rarest class first, each turn taking the next
    unused image (in seeded random order) that contains the class — so every class gets about
    ``num / C`` images when the data allow it. Otherwise a seeded uniform draw.
    """
    if (num is None) == (fraction is None):
        raise ValueError('give exactly one of num and fraction')
    n = len(dataset)
    if fraction is not None:
        if not 0 < fraction < 1:
            raise ValueError(f'fraction must be in (0, 1), got {fraction}')
        num = math.ceil(fraction * n)
    if num < 1:
        raise ValueError(f'the clean subset must have at least one image, got num={num}')
    if not hasattr(dataset, 'get_data_info'):
        raise TypeError(f'{type(dataset).__name__} has no get_data_info(); cannot split it')
    rng = np.random.RandomState(seed)
    classes = [_image_classes(dataset, i) for i in range(n)]
    candidates = [i for i in range(n) if classes[i]]
    if num > len(candidates):
        raise ValueError(f'asked for {num} clean images but only {len(candidates)} of {n} images '
                         'have annotated objects')
    order = [candidates[i] for i in rng.permutation(len(candidates))]
    if not class_balanced:
        return sorted(order[:num])
    by_class = {}
    for i in order:
        for c in sorted(classes[i]):
            by_class.setdefault(c, []).append(i)
    turn = sorted(by_class, key=lambda c: (len(by_class[c]), c))
    cursor = {c: 0 for c in turn}
    chosen: List[int] = []
    taken: Set[int] = set()
    while len(chosen) < num:
        for c in turn:
            images = by_class[c]
            while cursor[c] < len(images) and images[cursor[c]] in taken:
                cursor[c] += 1
            if cursor[c] < len(images):
                taken.add(images[cursor[c]])
                chosen.append(images[cursor[c]])
                if len(chosen) == num:
                    break
    return sorted(chosen)


@DATASETS.register_module()
def CleanSplit(dataset, part: str, num: Optional[int] = None, fraction: Optional[float] = None,
               seed: int = 0, class_balanced: bool = True):
    """The ``'clean'`` part of ``dataset`` (see :func:`split_clean_indices`) or the ``'train'``
    part (everything else). ``dataset`` is a dataset or its config; it must support
    ``get_subset`` (mmengine ``BaseDataset``)."""
    if part not in ('clean', 'train'):
        raise ValueError(f"part must be 'clean' or 'train', got {part!r}")
    if isinstance(dataset, dict):
        dataset = DATASETS.build(dataset)
    clean = split_clean_indices(dataset, num, fraction, seed, class_balanced)
    if part == 'clean':
        keep = clean
    else:
        excluded = set(clean)
        keep = [i for i in range(len(dataset)) if i not in excluded]
    return dataset.get_subset(keep)


def image_keys(dataset) -> Optional[List[Hashable]]:
    """The image of each sample of ``dataset`` (``img_path``, else ``img_id``), or None when the
    dataset does not expose them."""
    if not hasattr(dataset, 'get_data_info'):
        return None
    keys = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        key = info.get('img_path', info.get('img_id'))
        if key is None:
            return None
        keys.append(key)
    return keys


def _resolved(key: Hashable) -> Hashable:
    """A local file's real path (symlinks, relative and ``..`` parts resolved); other keys (ids,
    remote URIs) as they are."""
    if isinstance(key, str) and os.path.isfile(key):
        return os.path.realpath(key)
    return key


def _file_digest(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _shared_content(train_files: Set[str], clean_files: Set[str]) -> List[Tuple[str, str]]:
    """(clean file, training file) pairs with the same bytes under different paths. Only files
    of equal size are read, so a large training set costs one ``stat`` per image."""
    by_size: Dict[int, List[str]] = {}
    for path in train_files:
        by_size.setdefault(os.path.getsize(path), []).append(path)
    digests: Dict[str, str] = {}

    def digest(path: str) -> str:
        if path not in digests:
            digests[path] = _file_digest(path)
        return digests[path]

    pairs = []
    for path in sorted(clean_files):
        for candidate in by_size.get(os.path.getsize(path), []):
            if digest(candidate) == digest(path):
                pairs.append((path, candidate))
                break
    return pairs


class DisjointCheck(NamedTuple):
    """What :func:`check_disjoint` compared: the clean images, and how (for the log)."""
    clean_images: int
    how: str


def check_disjoint(train_dataset, clean_dataset) -> Optional[DisjointCheck]:
    """Raise ValueError if the clean dataset holds a training image: the same file reached by
    another path (symlinks, relative or ``..`` paths are resolved), or a copy of its bytes under
    another name. Returns what was checked, or None when a dataset exposes no image identities
    (nothing could be checked)."""
    train_keys, clean_keys = image_keys(train_dataset), image_keys(clean_dataset)
    if train_keys is None or clean_keys is None:
        return None
    train, clean = {_resolved(k): k for k in train_keys}, {_resolved(k): k for k in clean_keys}
    shared = sorted(set(train) & set(clean), key=str)
    if shared:
        example = [f'{clean[k]}' + (f' (= {k})' if k != clean[k] else '') for k in shared[:3]]
        raise ValueError(f'the clean subset overlaps the training set in {len(shared)} images '
                         f'(e.g. {example}); {_DISJOINT_FIX}')
    local = [all(isinstance(k, str) and os.path.isfile(k) for k in keys)
             for keys in (train, clean)]
    if not all(local):
        return DisjointCheck(len(clean), 'by image id or path')
    copies = _shared_content(set(train), set(clean))
    if copies:
        example = [f'{c} is a copy of {t}' for c, t in copies[:3]]
        raise ValueError(f'the clean subset holds {len(copies)} copies of training images under '
                         f'other names (e.g. {example}); {_DISJOINT_FIX}')
    return DisjointCheck(len(clean), 'by resolved path and by content (SHA-1 of same-size files)')


__all__ = ['split_clean_indices', 'CleanSplit', 'image_keys', 'check_disjoint', 'DisjointCheck']
