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

With ``check_annotation_files`` the hook also runs the checks of :mod:`.coco_checks` on every
dataloader's COCO file (class names the file lacks, boxes dropped per reason, a dataset emptied by
``filter_cfg``), logs what each dataset drops, warns when more than ``max_dropped_fraction`` of a
file's boxes are invalid, and refuses a training set in which a selected class has no box.
"""
from typing import Iterator, List, Optional, Set, Tuple

import torch
from mmengine.dataset import BaseDataset
from mmengine.runner.loops import BaseLoop
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmreweight.losses.base import check_loss_fits_head
from mmreweight.registry import HOOKS
from mmreweight.utils.loading import load_json
from .coco_checks import FIX_FILE, INVALID_REASONS, check_sources, sources_of_dataset


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
    content = load_json(ann_file, 'annotation file', FIX_FILE, backend_args)
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
    """Check each dataset against the model before it is used (see the module docstring).

    ``before_train`` checks every dataloader the run will use: the training set, the validation
    set, the test set and hooks' dataloaders (a meta hook's clean subset), so a bad evaluation
    file stops the run before training rather than at the first validation; ``before_val`` /
    ``before_test`` check the evaluation sets of a run that does not train. Also compares each
    head's ``loss_cls.num_classes`` (CBFocalLoss) with the head's. Raises ``ValueError`` naming
    the dataset, the file, the classes and the config keys to change; runs before any checkpoint
    is written.

    The configs of mmreweight set it as ``default_hooks.dataset_check``; add that line to any
    mmdet config that should have the same checks.

    Args:
        check_annotation_files: also read each COCO annotation file (once per file per process;
            :func:`~.runner_config.build_runner` reads it before the datasets are built and the
            hook reuses that reading). COCO train2017's file takes about 10 s and 2 GB of
            transient memory per process; set False to skip it.
        max_dropped_fraction: warn when more than this fraction of a file's boxes is dropped as
            invalid (see :data:`~.coco_checks.INVALID_REASONS`).
        empty_class: ``'error'`` (default) or ``'warn'`` when a selected class has no box left in
            the training set (a loss may handle an absent class itself, e.g. CBFocalLoss's
            ``zero_count_policy``).
    """
    priority = 'VERY_HIGH'  # before hooks that use the data (class counts, clean subsets)

    def __init__(self, check_annotation_files: bool = True, max_dropped_fraction: float = 0.01,
                 empty_class: str = 'error') -> None:
        if not 0.0 <= max_dropped_fraction <= 1.0:
            raise ValueError(f'max_dropped_fraction must be in [0, 1], got {max_dropped_fraction}')
        if empty_class not in ('error', 'warn'):
            raise ValueError(f"empty_class must be 'error' or 'warn', got {empty_class!r}")
        self.check_annotation_files = check_annotation_files
        self.max_dropped_fraction = max_dropped_fraction
        self.empty_class = empty_class
        self._checked_files: Set[str] = set()
        self._logged: Set[tuple] = set()

    def _check(self, runner, dataset, what: str, key: str, training: bool = False) -> None:
        """Check a built dataset, or a dataset config (not built yet: the file checks only);
        ``what`` names its role, ``key`` its place in the config."""
        if dataset is None:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        for name, head in class_heads(model):
            check_loss_fits_head(head, f'model.{name}')
        if not isinstance(dataset, dict):
            check_classes_fit_heads(dataset, model, what)
        if not self.check_annotation_files:
            return
        if not isinstance(dataset, dict):
            check_category_ids(dataset, what, self._checked_files)
        for source, report in check_sources(list(sources_of_dataset(dataset, key))):
            self._log_report(runner, source, report)
            if training:
                self._check_classes_present(runner, source, report)

    def _log_report(self, runner, source, report) -> None:
        key = (source.ann_file, source.where)
        if key in self._logged:
            return
        self._logged.add(key)
        runner.logger.info(f'DatasetCheckHook: {source.where} ({source.ann_file}): '
                           f'{report.summary()}')
        if report.boxes and report.invalid > self.max_dropped_fraction * report.boxes:
            reasons = ', '.join(f'{report.dropped[r]} {r}' for r in INVALID_REASONS
                                if report.dropped[r])
            runner.logger.warning(
                f'DatasetCheckHook: {source.where} ({source.ann_file}): {report.invalid} of '
                f'{report.boxes} boxes ({report.invalid / report.boxes:.1%}) are dropped as '
                f'invalid ({reasons}), more than max_dropped_fraction='
                f'{self.max_dropped_fraction:g}; fix the boxes in the file, or raise '
                'default_hooks.dataset_check.max_dropped_fraction')

    def _check_classes_present(self, runner, source, report) -> None:
        empty = [c for c, n in report.per_class.items() if n == 0]
        if not empty:
            return
        message = (f'{source.ann_file} ({source.where}): selected class(es) {empty} have no box '
                   f'left for training ({report.summary()}; crowd boxes are ignored); fix the '
                   'file, leave the class(es) out of metainfo=dict(classes=...), or set '
                   "default_hooks.dataset_check.empty_class='warn' if the loss handles absent "
                   'classes')
        if self.empty_class == 'error':
            raise ValueError(message)
        runner.logger.warning(f'DatasetCheckHook: {message}')

    @staticmethod
    def _loop_dataset(loop, dataloader_cfg=None):
        """The dataset of a built loop, else the dataset config of its dataloader config."""
        if isinstance(loop, BaseLoop):
            return loop.dataloader.dataset
        if isinstance(dataloader_cfg, dict):
            return dataloader_cfg.get('dataset')
        return getattr(dataloader_cfg, 'dataset', None)

    def before_train(self, runner) -> None:
        self._check(runner, runner.train_dataloader.dataset, 'training set',
                    'train_dataloader.dataset', training=True)
        # the runner builds the validation loop before training, the test loop on first use:
        # check the test set's config then, without building it
        val_loop = getattr(runner, 'val_loop', None)
        val = self._loop_dataset(val_loop) if val_loop is not None else None
        self._check(runner, val, 'validation set', 'val_dataloader.dataset')
        self._check(runner, self._loop_dataset(getattr(runner, '_test_loop', None),
                                               getattr(runner, '_test_dataloader', None)),
                    'test set', 'test_dataloader.dataset')
        for hook in getattr(runner, 'hooks', []):
            loader = getattr(hook, 'clean_dataloader_cfg', None)
            dataset = loader.get('dataset') if isinstance(loader, dict) else getattr(
                loader, 'dataset', None)
            if isinstance(dataset, (dict, BaseDataset)):
                self._check(runner, dataset, 'clean subset',
                            f'{type(hook).__name__}.clean_dataloader.dataset')

    def before_val(self, runner) -> None:
        self._check(runner, runner.val_loop.dataloader.dataset, 'validation set',
                    'val_dataloader.dataset')

    def before_test(self, runner) -> None:
        self._check(runner, runner.test_loop.dataloader.dataset, 'test set',
                    'test_dataloader.dataset')


__all__ = ['DatasetCheckHook', 'check_category_ids', 'check_classes_fit_heads', 'class_heads',
           'leaf_datasets', 'undeclared_category_ids']
