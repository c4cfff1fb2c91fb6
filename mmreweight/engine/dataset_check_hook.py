"""DatasetCheckHook: refuse, before anything trains or is evaluated, data that mmdet would use
silently wrong.

Two mismatches pass mmdet 3.3 without a word:

* **classes vs the head**: a dense head's label ``num_classes`` is the background index, so a
  dataset with one class more than the head trains that class as background; one class fewer
  leaves an output that never sees a positive.
* **undeclared category ids**: ``CocoDataset.parse_data_info`` skips every annotation whose
  ``category_id`` is not among the selected classes. That is how a config picks a class subset
  (``metainfo=dict(classes=...)``), but it also drops, unnoticed, boxes whose id the annotation
  file does not declare in its ``categories`` at all — a broken file, not a choice.
"""
from typing import Iterator, List, Optional, Set, Tuple

import torch
from mmengine import fileio
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmreweight.registry import HOOKS


def leaf_datasets(dataset) -> Iterator:
    """The datasets inside mmengine's wrappers (ConcatDataset, RepeatDataset,
    ClassBalancedDataset), or ``dataset`` itself."""
    if hasattr(dataset, 'datasets'):
        for child in dataset.datasets:
            yield from leaf_datasets(child)
    elif hasattr(dataset, 'dataset'):
        yield from leaf_datasets(dataset.dataset)
    else:
        yield dataset


def class_heads(detector) -> List[Tuple[str, object]]:
    """``(name, head)`` of the detector's heads whose ``num_classes`` are dataset classes: the
    dense ``bbox_head`` and the RoI head's box head(s); not the class-agnostic RPN."""
    heads = []
    if hasattr(detector, 'bbox_head'):
        heads.append(('bbox_head', detector.bbox_head))
    roi_head = getattr(detector, 'roi_head', None)
    box_heads = getattr(roi_head, 'bbox_head', None)
    if box_heads is not None:
        many = isinstance(box_heads, (list, tuple, torch.nn.ModuleList))
        for i, head in enumerate(box_heads if many else [box_heads]):
            heads.append((f'roi_head.bbox_head[{i}]' if many else 'roi_head.bbox_head', head))
    return [(name, head) for name, head in heads if isinstance(
        getattr(head, 'num_classes', None), int)]


def check_classes_fit_heads(dataset, detector, what: str = 'dataset') -> None:
    """Raise ValueError if a dataset's class list and a head's ``num_classes`` disagree."""
    for leaf in leaf_datasets(dataset):
        classes = getattr(leaf, 'metainfo', {}).get('classes')
        if not classes:
            continue
        for name, head in class_heads(detector):
            if head.num_classes != len(classes):
                raise ValueError(
                    f'the {what} ({type(leaf).__name__}) has {len(classes)} classes '
                    f'{tuple(classes)[:6]}{"..." if len(classes) > 6 else ""} but '
                    f'model.{name}.num_classes is {head.num_classes}: set num_classes to '
                    f'{len(classes)} (label num_classes is the background index: an extra '
                    'class would train as background, a missing one never gets a positive)')


def undeclared_category_ids(ann_file: str, backend_args: Optional[dict] = None
                            ) -> Optional[Tuple[Set[int], int, object]]:
    """``(ids, count, example image id)`` of the annotations of a COCO file whose category id is
    not in its ``categories``; None if every id is declared or the file is not COCO-like."""
    content = fileio.load(ann_file, backend_args=backend_args)
    if not isinstance(content, dict) or 'categories' not in content:
        return None
    declared = {c['id'] for c in content['categories']}
    bad = [a for a in content.get('annotations', []) if a.get('category_id') not in declared]
    if not bad:
        return None
    return {a.get('category_id') for a in bad}, len(bad), bad[0].get('image_id')


def check_category_ids(dataset, what: str = 'dataset', checked: Optional[Set[str]] = None) -> None:
    """Raise ValueError if a COCO-format annotation file of ``dataset`` uses undeclared category
    ids. ``checked``: files already checked (skipped, then added)."""
    for leaf in leaf_datasets(dataset):
        ann_file = getattr(leaf, 'ann_file', None)
        if not isinstance(ann_file, str) or not ann_file.endswith('.json'):
            continue
        if checked is not None and ann_file in checked:
            continue
        found = undeclared_category_ids(ann_file, getattr(leaf, 'backend_args', None))
        if found is not None:
            ids, count, image_id = found
            raise ValueError(
                f'{ann_file} (the {what}): {count} annotation(s) have a category_id its '
                f"'categories' does not declare: {sorted(ids, key=str)[:10]} (e.g. in image "
                f'{image_id}); mmdet would drop these boxes silently. Fix the file, or declare '
                'the categories and select classes with metainfo=dict(classes=...)')
        if checked is not None:
            checked.add(ann_file)


@HOOKS.register_module()
class DatasetCheckHook(Hook):
    """Check each dataset against the model before it is used (see the module docstring):
    ``before_train`` the training set, ``before_val`` / ``before_test`` the evaluation sets.
    Raises ``ValueError`` naming the dataset, the classes and the head, or the annotation file
    and the offending category ids; runs before any checkpoint is written.

    The configs of mmreweight set it as ``default_hooks.dataset_check``; add that line to any
    mmdet config that should have the same checks.

    Args:
        check_annotation_files: also read each COCO annotation file (once per file per process)
            to find undeclared category ids. COCO train2017's file takes about 10 s and 2 GB of
            transient memory per process; set False to skip it.
    """
    priority = 'VERY_HIGH'  # before hooks that use the data (class counts, clean subsets)

    def __init__(self, check_annotation_files: bool = True) -> None:
        self.check_annotation_files = check_annotation_files
        self._checked_files: Set[str] = set()

    def _check(self, runner, dataloader, what: str) -> None:
        dataset = getattr(dataloader, 'dataset', None)
        if dataset is None:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        check_classes_fit_heads(dataset, model, what)
        if self.check_annotation_files:
            check_category_ids(dataset, what, self._checked_files)

    def before_train(self, runner) -> None:
        self._check(runner, runner.train_dataloader, 'training set')

    def before_val(self, runner) -> None:
        self._check(runner, runner.val_loop.dataloader, 'validation set')

    def before_test(self, runner) -> None:
        self._check(runner, runner.test_loop.dataloader, 'test set')


__all__ = ['DatasetCheckHook', 'check_category_ids', 'check_classes_fit_heads', 'class_heads',
           'leaf_datasets', 'undeclared_category_ids']
