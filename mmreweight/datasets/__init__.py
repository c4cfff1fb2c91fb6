"""mmreweight.datasets: the embedded real-image detection benchmark.

* :func:`make_benchmark` / ``tools/make_benchmark.py``: make a COCO-format set of real object
  images (MNIST, Fashion-MNIST or any IDX pair) on blank canvases, with train/val/test/meta splits
  and optional train-only label noise and long-tail imbalance.
* :class:`EmbeddedDetectionDataset`: the mmdet dataset, generating the set on first use.
* :class:`LoadCleanLabels`, :class:`PackDetInputsWithCleanLabels`: carry true labels to the model.
"""
from .benchmark import (DATA_ROOT_ENV, benchmark_root, default_data_root, ensure_benchmark,
                        load_benchmark_info, make_benchmark, set_benchmark)
from .benchmark_build import annotation_file
from .benchmark_config import BENCHMARK_VERSION, NOISE_TYPES, SPLITS, BenchmarkConfig
from .benchmark_summary import format_summary, read_class_counts, summarize_split
from .clean_label_transforms import LoadCleanLabels, PackDetInputsWithCleanLabels
from .embedded_detection_dataset import EmbeddedDetectionDataset
from .object_sources import (FASHION_MNIST_CLASSES, MNIST_CLASSES, SOURCES, ObjectSource,
                             load_source)

__all__ = [
    'BENCHMARK_VERSION', 'BenchmarkConfig', 'DATA_ROOT_ENV', 'EmbeddedDetectionDataset',
    'FASHION_MNIST_CLASSES', 'LoadCleanLabels', 'MNIST_CLASSES', 'NOISE_TYPES', 'ObjectSource',
    'PackDetInputsWithCleanLabels', 'SOURCES', 'SPLITS', 'annotation_file', 'benchmark_root',
    'default_data_root', 'ensure_benchmark', 'format_summary', 'load_benchmark_info',
    'load_source', 'make_benchmark', 'read_class_counts', 'set_benchmark', 'summarize_split',
]
