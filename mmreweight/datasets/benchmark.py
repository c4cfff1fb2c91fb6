"""Public API of the embedded benchmark: where a set lives, making it atomically, reading it."""
import logging
import os
from typing import Any, Dict, Mapping, Optional, Union

from mmengine.logging import print_log

from mmreweight.utils.loading import load_json
from .atomic_directory import publish_directory, staging_directory
from .benchmark_build import INFO_FILE, annotation_file, build_benchmark
from .benchmark_config import BENCHMARK_VERSION, SPLITS, BenchmarkConfig
from .object_sources import load_source

#: environment variable naming the folder that holds generated benchmarks
DATA_ROOT_ENV = 'MMREWEIGHT_DATA_ROOT'
_DEFAULT_DATA_ROOT = os.path.join('~', '.cache', 'mmreweight', 'benchmarks')

ConfigLike = Union[BenchmarkConfig, Mapping[str, Any]]


def as_config(config: ConfigLike) -> BenchmarkConfig:
    """A :class:`BenchmarkConfig` from itself or from a dict of its fields."""
    return config if isinstance(config, BenchmarkConfig) else BenchmarkConfig.from_dict(config)


def default_data_root() -> str:
    """``$MMREWEIGHT_DATA_ROOT``, or ``~/.cache/mmreweight/benchmarks`` when it is unset."""
    return os.path.abspath(os.path.expanduser(os.environ.get(DATA_ROOT_ENV) or _DEFAULT_DATA_ROOT))


def benchmark_root(config: ConfigLike, data_root: Optional[str] = None) -> str:
    """The folder of a benchmark: ``<data_root or default_data_root()>/<config name>``."""
    base = os.path.expanduser(data_root) if data_root else default_data_root()
    return os.path.join(os.path.abspath(base), as_config(config).name)


def set_benchmark(cfg: Any, params: Mapping[str, Any]) -> int:
    """Update ``benchmark`` with ``params`` on every dataset of an mmengine config that has one
    (train, val, test, a meta hook's clean dataloader, however deep), so that they all describe
    the same benchmark; return how many were updated.

    Raises:
        ValueError: the config has no dataset with a ``benchmark`` (not an embedded-benchmark
            config).
    """
    def visit(node: Any) -> int:
        found = 0
        if isinstance(node, Mapping):
            if isinstance(node.get('benchmark'), Mapping):
                node['benchmark'].update(params)
                found += 1
            found += sum(visit(v) for v in node.values())
        elif isinstance(node, (list, tuple)):
            found += sum(visit(v) for v in node)
        return found

    updated = visit(cfg)
    if not updated:
        raise ValueError('the config has no dataset with a `benchmark` (set_benchmark is for '
                         'configs on the embedded benchmark, e.g. configs/retinanet_focal.py)')
    return updated


def load_benchmark_info(root: str) -> Dict[str, Any]:
    """The parsed ``<root>/benchmark.json``.

    Raises:
        FileNotFoundError: ``root`` holds no (complete) benchmark.
        ValueError: ``benchmark.json`` is truncated or not JSON (the message says to delete the
            folder, which is made again on next use).
    """
    path = os.path.join(root, INFO_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{root} holds no embedded benchmark ({INFO_FILE} not found); '
                                'make one with tools/make_benchmark.py or make_benchmark()')
    return load_json(path, 'embedded benchmark info',
                     f'delete the folder {root} (a generated cache: it is made again on next '
                     'use) or regenerate it with tools/make_benchmark.py --force')


def incomplete_benchmark(root: str) -> Optional[str]:
    """Why the non-empty folder ``root`` is a half-written benchmark, or None.

    Half-written: its entries are all benchmark parts (split folders, ``annotations``,
    ``benchmark.json``) but ``benchmark.json`` is missing or not valid JSON, an annotation file is
    missing or has another size than recorded, or a split folder holds another number of images
    (an interrupted copy, a full disk). A folder holding anything else is not ours to judge.
    """
    parts = set(SPLITS) | {'annotations', INFO_FILE}
    if not os.path.isdir(root) or not set(os.listdir(root)) <= parts:
        return None
    path = os.path.join(root, INFO_FILE)
    if not os.path.isfile(path):
        return f'{INFO_FILE} is missing'
    try:
        info = load_json(path, INFO_FILE)
    except ValueError as err:
        return str(err).split(';')[0]
    for split, stats in dict(info.get('splits') or {}).items():
        ann = annotation_file(root, split)
        if not os.path.isfile(ann):
            return f'{ann} is missing'
        size, recorded = os.path.getsize(ann), stats.get('annotation_bytes')
        if recorded is not None and size != recorded:
            return f'{ann} has {size} bytes, {recorded} were written'
        folder = os.path.join(root, split)
        images = len(os.listdir(folder)) if os.path.isdir(folder) else 0
        if images != stats.get('images', images):
            return f'{folder} holds {images} images, {stats["images"]} were written'
    return None


def ensure_benchmark(config: ConfigLike, root: Optional[str] = None,
                     force: bool = False) -> Dict[str, Any]:
    """Make the benchmark at ``root`` unless it is already there; return its info.

    Generation goes to a hidden staging folder next to ``root`` that is renamed into place when
    complete, so an interrupted run leaves nothing at ``root`` and concurrent callers (DDP ranks)
    each generate identical data, the first rename wins and the others use it.

    Args:
        config: the parameters (a :class:`BenchmarkConfig` or a dict of its fields).
        root: the benchmark's folder; defaults to :func:`benchmark_root` of ``config``.
        force: regenerate even if ``root`` holds a benchmark (it is replaced).

    Returns:
        The content of ``<root>/benchmark.json``, plus ``'root'``.

    Raises:
        FileExistsError: ``root`` exists but is not a benchmark with these parameters (with
            ``force``: exists, is not empty and is not a benchmark).
        FileNotFoundError / ValueError: see :func:`~.object_sources.load_source` and
            :func:`~.benchmark_build.build_benchmark`.
    """
    cfg = as_config(config)
    root = os.path.abspath(os.path.expanduser(root)) if root else benchmark_root(cfg)
    if os.path.lexists(root) and not _is_empty_dir(root):
        problem = incomplete_benchmark(root)
        if problem is not None:
            print_log(f'{root} is a half-written embedded benchmark ({problem}); generating it '
                      'again', logger='current', level=logging.WARNING)
            force = True
        elif not force:
            return _existing_benchmark(root, cfg)
        else:
            _check_replaceable(root)
    # the source is read before anything is written, so missing files leave no trace
    source = load_source(cfg.source, cfg.idx_images, cfg.idx_labels, cfg.class_names)
    with staging_directory(root) as staging:
        info = build_benchmark(cfg, source, staging)
        published = publish_directory(staging, root, replace=force)
    if not published:
        return _existing_benchmark(root, cfg)
    return dict(info, root=root)


def make_benchmark(root: Optional[str] = None, source: str = 'mnist', seed: int = 0, *,
                   force: bool = False, **options: Any) -> Dict[str, Any]:
    """Make a COCO-format detection benchmark of real object images on blank canvases.

    Example::

        info = make_benchmark('data/mnist_noisy', source='mnist', seed=0,
                              noise_type='uniform', noise_rate=0.4, imbalance_ratio=1)

    Args:
        root: output folder; ``None`` uses ``$MMREWEIGHT_DATA_ROOT/<name>`` (or
            ``~/.cache/mmreweight/benchmarks/<name>``), the folder
            :class:`~.embedded_detection_dataset.EmbeddedDetectionDataset` looks in.
        source: ``'mnist'``, ``'fashion_mnist'`` or ``'idx'``.
        seed: random seed; the same parameters give byte-identical files.
        force: replace an existing benchmark at ``root``.
        **options: any other :class:`~.benchmark_config.BenchmarkConfig` field, e.g.
            ``train_images``, ``noise_type``, ``noise_rate``, ``imbalance_ratio``, ``idx_images``.

    Returns:
        The content of ``<root>/benchmark.json`` plus ``'root'``: ``name``, ``params``,
        ``classes``, per-split ``splits`` counts, ``source`` files.

    Raises:
        ValueError: invalid parameters (unknown source or noise type, sizes, rates, ratios,
            a canvas too small for the objects, splits larger than the source pool allows).
        FileNotFoundError: the source's files are missing.
        FileExistsError: ``root`` holds something else and ``force`` is not set.
    """
    cfg = BenchmarkConfig.from_dict(dict(options, source=source, seed=seed))
    return ensure_benchmark(cfg, root, force=force)


def _existing_benchmark(root: str, cfg: BenchmarkConfig) -> Dict[str, Any]:
    """The info of the benchmark at ``root``, checked to match ``cfg``."""
    if not os.path.isfile(os.path.join(root, INFO_FILE)):
        raise FileExistsError(f'{root} exists but is not an embedded benchmark (no {INFO_FILE}); '
                              'choose another folder, or empty it')
    info = load_benchmark_info(root)
    stored = dict(info.get('params', {}), version=info.get('version'))
    wanted = dict(cfg.to_dict(), version=BENCHMARK_VERSION)
    differing = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
    if differing:
        details = ', '.join(f'{k}: {stored.get(k)!r} there, {wanted.get(k)!r} wanted'
                            for k in differing)
        raise FileExistsError(f'{root} holds a benchmark with other parameters ({details}); '
                              'use another folder or force=True (--force) to replace it')
    return dict(info, root=root)


def _is_empty_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)


def _check_replaceable(root: str) -> None:
    """Refuse to replace a folder that is not a benchmark (guards ``force``)."""
    if os.path.isfile(os.path.join(root, INFO_FILE)):
        return
    raise FileExistsError(f'{root} exists and is not an embedded benchmark; force only replaces '
                          'benchmarks, so remove it yourself or choose another folder')
