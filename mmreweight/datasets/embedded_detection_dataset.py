"""mmdet dataset of the embedded benchmark, made on first use from a self-contained config."""
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
from mmdet.datasets import CocoDataset

from ..registry import DATASETS
from .benchmark import as_config, benchmark_root, ensure_benchmark, load_benchmark_info
from .benchmark_config import SPLITS, BenchmarkConfig


@DATASETS.register_module()
class EmbeddedDetectionDataset(CocoDataset):
    """A split of an embedded real-image detection benchmark, generated if it is not there yet.

    The config names the benchmark by its parameters, so it runs from any folder::

        dict(type='mmreweight.EmbeddedDetectionDataset',
             benchmark=dict(source='mnist', seed=0, noise_type='uniform', noise_rate=0.4),
             split='train', pipeline=[...])

    ``ann_file``, ``data_prefix`` and ``metainfo['classes']`` come from the benchmark. The folder
    is ``data_root`` if given, else ``$MMREWEIGHT_DATA_ROOT/<name>`` or
    ``~/.cache/mmreweight/benchmarks/<name>`` (see :func:`~.benchmark.benchmark_root`). A missing
    benchmark is generated atomically; concurrent DDP ranks each generate the same data and the
    first to finish publishes it, so no barrier is needed.

    Each instance dict carries, besides mmdet's ``bbox``/``bbox_label``/``ignore_flag``:
    ``clean_bbox_label`` (the true label; -1 if its class is not among ``classes``), ``noisy``
    (whether ``bbox_label`` was corrupted), ``source_index`` and ``ann_id``.

    Args:
        benchmark: the benchmark's parameters (fields of
            :class:`~.benchmark_config.BenchmarkConfig`). May be omitted when ``data_root`` holds a
            generated benchmark, which is then used as it is.
        split: ``'train'``, ``'val'``, ``'test'`` or ``'meta'`` (the clean, class-balanced subset).
        data_root: the benchmark's own folder (holding ``benchmark.json``), overriding the default.
        **kwargs: any other ``CocoDataset`` argument (``pipeline``, ``test_mode``, ``filter_cfg``,
            ...), except ``ann_file`` and ``data_prefix``.
    """

    METAINFO = dict(classes=(), palette=[])

    def __init__(self, benchmark: Optional[Union[Mapping[str, Any], BenchmarkConfig]] = None,
                 split: str = 'train', data_root: Optional[str] = None, **kwargs: Any) -> None:
        if split not in SPLITS:
            raise ValueError(f'unknown split {split!r}; expected one of {", ".join(SPLITS)}')
        for key in ('ann_file', 'data_prefix'):
            if key in kwargs:
                raise ValueError(f'{type(self).__name__} sets {key} from the benchmark; remove it '
                                 'from the config')
        self.split = split
        self.benchmark_root, self.benchmark_info = self._resolve(benchmark, data_root)
        metainfo = self._metainfo_for(self.benchmark_info['classes'], kwargs.pop('metainfo', None))
        super().__init__(ann_file=f'annotations/{split}.json', data_root=self.benchmark_root,
                         data_prefix=dict(img=f'{split}/'), metainfo=metainfo, **kwargs)

    @staticmethod
    def _resolve(benchmark: Optional[Union[Mapping[str, Any], BenchmarkConfig]],
                 data_root: Optional[str]) -> Tuple[str, Dict[str, Any]]:
        """The benchmark's folder and info, generating it if needed."""
        if benchmark is None:
            if data_root is None:
                raise ValueError('EmbeddedDetectionDataset needs benchmark=dict(...) (its '
                                 'parameters) or the data_root of a generated benchmark')
            root = os.path.abspath(os.path.expanduser(data_root))
            return root, dict(load_benchmark_info(root), root=root)
        cfg = as_config(benchmark)
        root = data_root or benchmark_root(cfg)
        info = ensure_benchmark(cfg, root)
        return info['root'], info

    @staticmethod
    def _metainfo_for(classes: List[str], metainfo: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        """The benchmark's classes and a palette; a config's ``metainfo`` may pick a subset."""
        merged = dict(metainfo or {})
        merged.setdefault('classes', tuple(classes))
        unknown = [c for c in merged['classes'] if c not in classes]
        if unknown:
            raise ValueError(f'metainfo classes {unknown} are not in the benchmark ({classes})')
        coco_palette = CocoDataset.METAINFO['palette']
        merged.setdefault('palette', [coco_palette[i % len(coco_palette)]
                                      for i in range(len(merged['classes']))])
        return merged

    def parse_data_info(self, raw_data_info: dict) -> Union[dict, List[dict]]:
        """mmdet's parsing, plus the per-instance label-noise fields (see the class docstring)."""
        data_info = super().parse_data_info(raw_data_info)
        kept = [ann for ann in raw_data_info['raw_ann_info']
                if _kept_by_coco_dataset(ann, raw_data_info['raw_img_info'], self.cat_ids)]
        instances = data_info['instances']
        if len(kept) != len(instances):
            raise RuntimeError(f'image {data_info["img_id"]}: CocoDataset kept {len(instances)} '
                               f'annotations, expected {len(kept)}; its filtering rules changed')
        for instance, ann in zip(instances, kept):
            x, y, w, h = ann['bbox']
            if instance['bbox'] != [x, y, x + w, y + h]:
                raise RuntimeError(f'annotation {ann["id"]}: instance and annotation disagree')
            instance['clean_bbox_label'] = self.cat2label.get(ann['clean_category_id'], -1)
            instance['noisy'] = bool(ann['noisy'])
            instance['source_index'] = int(ann['source_index'])
            instance['ann_id'] = int(ann['id'])
        return data_info

    def class_counts(self, labels: str = 'noisy') -> np.ndarray:
        """(C,) instances per class in this dataset (after filtering), C = ``len(classes)``.

        Args:
            labels: ``'noisy'``: the training labels (``bbox_label``); ``'clean'``: the true ones.
        """
        if labels not in ('noisy', 'clean'):
            raise ValueError(f"labels must be 'noisy' or 'clean', got {labels!r}")
        key = 'bbox_label' if labels == 'noisy' else 'clean_bbox_label'
        values = [inst[key] for i in range(len(self))
                  for inst in self.get_data_info(i)['instances'] if inst[key] >= 0]
        return np.bincount(np.asarray(values, dtype=np.int64),
                           minlength=len(self.metainfo['classes']))


def _kept_by_coco_dataset(ann: Dict[str, Any], img_info: Dict[str, Any],
                          cat_ids: List[int]) -> bool:
    """Whether mmdet 3.3's ``CocoDataset.parse_data_info`` keeps ``ann`` (its rules, verbatim)."""
    if ann.get('ignore', False):
        return False
    x1, y1, w, h = ann['bbox']
    inter_w = max(0, min(x1 + w, img_info['width']) - max(x1, 0))
    inter_h = max(0, min(y1 + h, img_info['height']) - max(y1, 0))
    if inter_w * inter_h == 0 or ann['area'] <= 0 or w < 1 or h < 1:
        return False
    return ann['category_id'] in cat_ids
