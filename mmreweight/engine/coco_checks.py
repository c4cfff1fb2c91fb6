"""COCO annotation files as mmdet's ``CocoDataset`` will read them: what it refuses with a bare
error, what it drops without a word, and what is left after ``filter_cfg``.

mmdet 3.3 reads a file with ``parse_data_info`` (per annotation: skip ``ignore``, boxes without
overlap with the image, ``area <= 0``, ``w < 1`` or ``h < 1``, categories not selected; crowd boxes
get ``ignore_flag``) and ``filter_data`` (``filter_empty_gt``: images without an annotation of a
selected category; ``min_size``: images whose shorter side is smaller). Silent outcomes this
module turns into messages:

* a class name not in the file's ``categories`` (a typo, or ints for names): ``get_cat_ids``
  returns fewer ids than classes, so the labels of the other classes shift, or with no id left
  every box is dropped and building the dataset fails with "need at least one array to
  concatenate";
* an empty ``annotations`` list, or no ``images``: the same bare error, or nothing to evaluate;
* boxes dropped as invalid, per reason; NaN/inf coordinates (an inf width passes mmdet's checks);
* a dataset emptied by ``filter_cfg``, with the images each filter removed.

:func:`check_annotation_files` runs the file checks on a config before the runner builds any
dataset (``tools/train.py`` / ``tools/test.py`` through :func:`~.runner_config.build_runner`);
:class:`~.dataset_check_hook.DatasetCheckHook` runs them on the runner's datasets and logs the
drops. Each file is read once per process: the small reports are cached by path, size and mtime.
"""
import difflib
import math
import numbers
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

from mmreweight.utils.loading import load_json

FIX_FILE = 're-export it or fix the path'

#: why an annotation is not a training box, in the order they are tested; the last two are not
#: invalid boxes: a class subset chosen with metainfo, and crowd regions (kept, ignored)
NOT_AN_IMAGE = 'image_id not among the images'
UNSELECTED = 'category not selected'
CROWD = 'crowd (kept as ignored)'
INVALID_REASONS = ('marked ignore', NOT_AN_IMAGE, 'bbox is not 4 numbers', 'NaN/inf coordinates',
                   'zero or negative width/height', 'width or height below 1 px',
                   'area missing or <= 0', 'outside the image')


@dataclass(frozen=True)
class AnnotationSource:
    """A COCO file as one dataset reads it.

    Attributes:
        ann_file: the path (``data_root`` joined).
        classes: ``metainfo['classes']`` (None: not known, names are not checked).
        filter_cfg: the dataset's ``filter_cfg`` (None: no filtering).
        test_mode: test-mode datasets are not filtered and may lack annotations (COCO test-dev).
        where: the config key or role of the dataset, for messages.
    """
    ann_file: str
    classes: Optional[Tuple[Any, ...]]
    filter_cfg: Optional[Tuple[Tuple[str, Any], ...]]
    test_mode: bool
    where: str
    backend_args: Optional[Tuple[Tuple[str, Any], ...]] = None

    @property
    def filters(self) -> Dict[str, Any]:
        return dict(self.filter_cfg or ())


@dataclass
class CocoReport:
    """What a dataset keeps of its file (see the module docstring)."""
    boxes: int = 0
    #: reason -> annotations mmdet drops for it (INVALID_REASONS, UNSELECTED, CROWD)
    dropped: Counter = field(default_factory=Counter)
    #: selected class name -> boxes left for training (in kept images, not crowd)
    per_class: Dict[Any, int] = field(default_factory=dict)
    images: int = 0
    #: filter -> images it removed (in the order mmdet applies them)
    removed: Dict[str, int] = field(default_factory=dict)
    kept_images: int = 0
    #: non-finite boxes that pass mmdet's checks (an inf width): (count, an annotation id)
    non_finite_kept: Tuple[int, Any] = (0, None)

    @property
    def invalid(self) -> int:
        return sum(self.dropped[r] for r in INVALID_REASONS)

    def summary(self) -> str:
        reasons = ', '.join(f'{self.dropped[r]} {r}' for r in INVALID_REASONS if self.dropped[r])
        extra = ''.join(f'; {self.dropped[r]} {r}' for r in (UNSELECTED, CROWD) if self.dropped[r])
        filters = ''.join(f', {name} removed {n}' for name, n in self.removed.items())
        return (f'{self.boxes} boxes, {self.invalid} dropped as invalid'
                f'{f" ({reasons})" if reasons else ""}{extra}; {self.images} images'
                f'{filters}, {self.kept_images} left')


def _frozen(value) -> Optional[Tuple]:
    return None if value is None else tuple(sorted(dict(value).items()))


def _join(data_root: Optional[str], path: str) -> str:
    """As mmengine's ``BaseDataset`` joins ``ann_file`` to ``data_root``."""
    if data_root and not os.path.isabs(path) and '://' not in path:
        return os.path.join(data_root, path)
    return path


def _registered_classes(dataset_type) -> Optional[Tuple]:
    """``METAINFO['classes']`` of a dataset type name (a class without ``metainfo`` in the
    config uses it), or None if the type cannot be resolved here."""
    from mmreweight.registry import DATASETS
    try:
        cls = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else dataset_type
    except Exception:  # noqa: BLE001 - an unresolvable type: the runner will name it
        return None
    classes = getattr(cls, 'METAINFO', {}).get('classes') if cls is not None else None
    return tuple(classes) if classes else None


def sources_of_dataset_cfg(cfg: Any, where: str) -> Iterator[AnnotationSource]:
    """The COCO files of a dataset config, looking through wrapper configs (``dataset`` /
    ``datasets`` keys); datasets without a ``.json`` ``ann_file`` (e.g. the embedded benchmark,
    which makes its own) are skipped."""
    if not isinstance(cfg, dict):
        return
    if isinstance(cfg.get('datasets'), (list, tuple)):
        for i, child in enumerate(cfg['datasets']):
            yield from sources_of_dataset_cfg(child, f'{where}.datasets[{i}]')
        return
    if isinstance(cfg.get('dataset'), dict):
        yield from sources_of_dataset_cfg(cfg['dataset'], f'{where}.dataset')
        return
    ann_file = cfg.get('ann_file')
    if not isinstance(ann_file, str) or not ann_file.endswith('.json'):
        return
    classes = (cfg.get('metainfo') or {}).get('classes')
    classes = tuple(classes) if classes else _registered_classes(cfg.get('type'))
    yield AnnotationSource(_join(cfg.get('data_root'), ann_file), classes,
                           _frozen(cfg.get('filter_cfg')), bool(cfg.get('test_mode', False)),
                           where, _frozen(cfg.get('backend_args')))


def sources_of_dataset(dataset, where: str) -> Iterator[AnnotationSource]:
    """The COCO files of a built dataset (mmengine's wrappers looked through), or of a dataset
    config."""
    if isinstance(dataset, dict):
        yield from sources_of_dataset_cfg(dataset, where)
        return
    from .dataset_check_hook import leaf_datasets
    for leaf in leaf_datasets(dataset):
        ann_file = getattr(leaf, 'ann_file', None)
        if not isinstance(ann_file, str) or not ann_file.endswith('.json'):
            continue
        classes = getattr(leaf, 'metainfo', {}).get('classes')
        yield AnnotationSource(ann_file, tuple(classes) if classes else None,
                               _frozen(getattr(leaf, 'filter_cfg', None)),
                               bool(getattr(leaf, 'test_mode', False)), where,
                               _frozen(getattr(leaf, 'backend_args', None)))


def dataloader_cfgs(cfg: Config, keys: Sequence[str] = ('train_dataloader', 'val_dataloader',
                                                        'test_dataloader')
                    ) -> Iterator[Tuple[str, dict]]:
    """``(config key, dataloader config)`` of a run config: ``keys`` and, with
    ``train_dataloader`` among them, every hook's ``*_dataloader`` argument (a meta hook's
    ``clean_dataloader``, used in training only)."""
    for key in keys:
        loader = cfg.get(key)
        if isinstance(loader, dict):
            yield key, loader
    if 'train_dataloader' not in keys:
        return
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        for name, value in (hook.items() if isinstance(hook, dict) else ()):
            if name.endswith('dataloader') and isinstance(value, dict):
                yield f'custom_hooks[{i}].{name}', value


def read_coco(source: AnnotationSource) -> dict:
    """The content of ``source.ann_file``, checked to be a COCO file mmdet can build from.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not JSON, not a COCO object, no ``images``, no ``categories``, or no
            annotations (allowed only in test mode, when the key is absent as in COCO test-dev).
    """
    fix = f'{FIX_FILE} (ann_file of {source.where})'
    path = source.ann_file
    content = load_json(path, 'annotation file', fix, dict(source.backend_args or ()) or None)
    if not isinstance(content, dict):
        raise ValueError(f'annotation file {path} holds a JSON {type(content).__name__}, not a '
                         f"COCO object with 'images', 'annotations' and 'categories'; {fix}")
    for key in ('images', 'categories'):
        if not isinstance(content.get(key), list) or not content[key]:
            state = 'is empty' if isinstance(content.get(key), list) else 'is missing'
            raise ValueError(f"annotation file {path}: '{key}' {state}; {fix}")
    anns = content.get('annotations')
    if anns is None and source.test_mode:
        return content
    if not isinstance(anns, list) or not anns:
        raise ValueError(
            f"annotation file {path}: 'annotations' {'is empty' if anns == [] else 'is missing'} "
            f'(mmdet would drop every image, or evaluate against nothing); {fix}')
    return content


def check_class_names(source: AnnotationSource, content: dict) -> None:
    """Raise ValueError if a class of ``source.classes`` is not a category name of the file."""
    if not source.classes:
        return
    names = [c.get('name') for c in content['categories'] if isinstance(c, dict)]
    missing = [c for c in source.classes if c not in names]
    if not missing:
        return
    hints = []
    for name in missing:
        if not isinstance(name, str):
            if str(name) in names:
                hints.append(f'{name!r} -> {str(name)!r} (class names are strings)')
        else:
            close = difflib.get_close_matches(name, [str(n) for n in names], n=1)
            if close:
                hints.append(f'{name!r} -> {close[0]!r}?')
    shown = names if len(names) <= 20 else names[:20] + ['...']
    raise ValueError(
        f'{source.ann_file} ({source.where}): metainfo classes {missing} are not category names '
        f"of the file (its categories: {shown}); mmdet would silently shift the labels of the "
        f'other classes or drop every box. Fix metainfo=dict(classes=...) in {source.where}'
        f'{"; " + ", ".join(hints) if hints else ""}')


def _box_problem(ann: dict, image: Optional[dict]) -> Optional[str]:
    """The INVALID_REASONS entry that makes mmdet (or this check) drop ``ann``, or None."""
    if image is None:
        return NOT_AN_IMAGE
    if ann.get('ignore', False):
        return 'marked ignore'
    bbox = ann.get('bbox')
    if (not isinstance(bbox, (list, tuple)) or len(bbox) != 4
            or not all(isinstance(v, numbers.Real) for v in bbox)):
        return 'bbox is not 4 numbers'
    if not all(math.isfinite(v) for v in bbox):
        return 'NaN/inf coordinates'
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return 'zero or negative width/height'
    if w < 1 or h < 1:
        return 'width or height below 1 px'
    area = ann.get('area')
    if not isinstance(area, numbers.Real) or not area > 0:
        return 'area missing or <= 0'
    if (max(0, min(x + w, image.get('width', 0)) - max(x, 0))
            * max(0, min(y + h, image.get('height', 0)) - max(y, 0))) == 0:
        return 'outside the image'
    return None


def _mmdet_keeps(ann: dict, image: dict) -> bool:
    """Whether mmdet 3.3's ``CocoDataset.parse_data_info`` keeps this (non-finite) box: its
    arithmetic, NaN and inf included."""
    try:
        x1, y1, w, h = ann['bbox']
        inter_w = max(0, min(x1 + w, image['width']) - max(x1, 0))
        inter_h = max(0, min(y1 + h, image['height']) - max(y1, 0))
        return not (inter_w * inter_h == 0 or ann['area'] <= 0 or w < 1 or h < 1)
    except Exception:  # noqa: BLE001 - mmdet would fail on it: not kept
        return False


def inspect_coco(source: AnnotationSource, content: dict) -> CocoReport:
    """Count what the dataset of ``source`` keeps of ``content`` (see :class:`CocoReport`)."""
    report = CocoReport()
    images = {im.get('id'): im for im in content['images'] if isinstance(im, dict)}
    anns = [a for a in content.get('annotations') or [] if isinstance(a, dict)]
    cats = {c.get('id'): c.get('name') for c in content['categories'] if isinstance(c, dict)}
    classes = source.classes if source.classes else tuple(cats.values())
    selected = {cid for cid, name in cats.items() if name in classes}
    report.boxes, report.images = len(anns), len(images)

    kept = set(images)
    filters = source.filters
    if not source.test_mode and filters:
        if filters.get('filter_empty_gt', False):
            # mmdet's test uses every annotation of a selected category, valid box or not
            with_cat = {a.get('image_id') for a in anns if a.get('category_id') in selected}
            before = len(kept)
            kept &= with_cat
            report.removed['filter_empty_gt'] = before - len(kept)
        min_size = filters.get('min_size', 0)
        if min_size:
            before = len(kept)
            kept = {i for i in kept if min(images[i].get('width', 0),
                                           images[i].get('height', 0)) >= min_size}
            report.removed[f'min_size={min_size}'] = before - len(kept)
    report.kept_images = len(kept)

    per_class = Counter()
    non_finite = [0, None]
    for ann in anns:
        image = images.get(ann.get('image_id'))
        reason = _box_problem(ann, image)
        if reason == 'NaN/inf coordinates' and _mmdet_keeps(ann, image):
            non_finite[0] += 1
            non_finite[1] = ann.get('id') if non_finite[1] is None else non_finite[1]
        if reason is None and ann.get('category_id') not in selected:
            reason = UNSELECTED
        if reason is None and ann.get('iscrowd', False):
            reason = CROWD
        if reason is not None:
            report.dropped[reason] += 1
        elif ann.get('image_id') in kept:
            per_class[cats[ann['category_id']]] += 1
    report.per_class = {c: per_class[c] for c in classes}
    report.non_finite_kept = tuple(non_finite)
    return report


def check_report(source: AnnotationSource, report: CocoReport) -> None:
    """Raise ValueError for what would be silently wrong: boxes with inf coordinates that mmdet
    keeps, and a dataset emptied by its ``filter_cfg`` (mmengine then fails with "need at least
    one array to concatenate")."""
    count, example = report.non_finite_kept
    if count:
        raise ValueError(
            f'{source.ann_file} ({source.where}): {count} box(es) with inf coordinates pass '
            f"mmdet's checks and would be trained on (e.g. annotation id {example}); fix or "
            'remove them in the file')
    if report.kept_images == 0 and not source.test_mode:
        by = ', '.join(f'{name} removed {n}' for name, n in report.removed.items() if n)
        raise ValueError(
            f'{source.ann_file} ({source.where}) is empty after filtering: of {report.images} '
            f'images, {by or "the filters removed none"} (filter_empty_gt removes images without '
            'an annotation of a selected class; min_size images with a shorter side below it). '
            f'Fix the file or the classes, or relax {source.where}.filter_cfg')


_REPORTS: Dict[tuple, CocoReport] = {}


def _file_key(source: AnnotationSource) -> tuple:
    try:
        stat = os.stat(source.ann_file)
        stamp = (stat.st_size, stat.st_mtime_ns)
    except OSError:
        stamp = None
    return (source.ann_file, stamp, source.classes, source.filter_cfg, source.test_mode)


def check_sources(sources: Sequence[AnnotationSource]) -> List[Tuple[AnnotationSource, CocoReport]]:
    """Read each file once, run every check of this module on each source and return the
    reports (cached per file version, classes and filters)."""
    results = []
    contents: Dict[str, dict] = {}
    for source in sources:
        key = _file_key(source)
        report = _REPORTS.get(key)
        if report is None:
            if source.ann_file not in contents:
                contents[source.ann_file] = read_coco(source)
            content = contents[source.ann_file]
            check_class_names(source, content)
            report = inspect_coco(source, content)
            if key[1] is not None:
                _REPORTS[key] = report
        check_report(source, report)
        results.append((source, report))
    return results


def check_annotation_files(cfg: Config, keys: Sequence[str] = ('train_dataloader',
                                                               'val_dataloader',
                                                               'test_dataloader')) -> int:
    """Check the COCO files of every dataloader of ``cfg`` (``keys`` and hooks' dataloaders)
    before anything is built; returns the number of datasets checked. Raises
    FileNotFoundError / ValueError naming the file, the config key and the fix."""
    sources = [s for key, loader in dataloader_cfgs(cfg, keys)
               for s in sources_of_dataset_cfg(loader.get('dataset'), f'{key}.dataset')]
    return len(check_sources(sources))


__all__ = ['AnnotationSource', 'CocoReport', 'INVALID_REASONS', 'check_annotation_files',
           'check_class_names', 'check_report', 'check_sources', 'dataloader_cfgs',
           'inspect_coco', 'read_coco', 'sources_of_dataset', 'sources_of_dataset_cfg']
