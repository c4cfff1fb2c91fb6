"""Every parameter of an embedded detection benchmark, validated, and its deterministic name."""
import dataclasses
import hashlib
import json
import operator
import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from .object_sources import SOURCES

#: bumped whenever the same parameters would produce different data
BENCHMARK_VERSION = 1
SPLITS = ('train', 'val', 'test', 'meta')
NOISE_TYPES = ('none', 'uniform', 'pairflip')


@dataclass(frozen=True)
class BenchmarkConfig:
    """Parameters of an embedded detection benchmark; the data is a pure function of them.

    Attributes:
        source: object pool: ``'mnist'``, ``'fashion_mnist'`` or ``'idx'``.
        seed: the random seed (non-negative integer).
        train_images / val_images / test_images / meta_images: images per split. ``meta`` is the
            clean, class-balanced trusted subset used by meta-reweighting.
        min_objects / max_objects: objects per image, drawn uniformly in this inclusive range.
        min_size / max_size: the longer side of each object's tight box, in pixels, drawn uniformly
            in this inclusive range.
        canvas_size: images are ``canvas_size`` x ``canvas_size``.
        min_gap: minimum number of background pixels between two objects' boxes.
        pixel_threshold: a pixel belongs to an object when its intensity (0-255) is above this;
            boxes are the tight extent of such pixels.
        max_reuse: how many times one source object may appear inside its split (with a different
            scale and position each time); bounds how many images the pool can serve.
        imbalance_ratio: train only; ``>= 1``. Class ``c`` gets a share of the train objects
            proportional to ``imbalance_ratio ** (-c / (C - 1))`` (1 = balanced).
        noise_type: train only; ``'none'``, ``'uniform'`` (to a different class, uniformly) or
            ``'pairflip'`` (class ``c`` to ``(c + 1) mod C``).
        noise_rate: train only; fraction of train annotations whose label is flipped, in
            ``[0, 1)``; exactly ``round(noise_rate * N)`` of the N annotations are flipped.
        idx_images / idx_labels: IDX files, for ``source='idx'`` only.
        class_names: class names, for ``source='idx'`` only (default: the labels as strings).
    """
    source: str = 'mnist'
    seed: int = 0
    train_images: int = 2000
    val_images: int = 300
    test_images: int = 300
    meta_images: int = 200
    min_objects: int = 1
    max_objects: int = 4
    min_size: int = 20
    max_size: int = 48
    canvas_size: int = 128
    min_gap: int = 2
    pixel_threshold: int = 32
    max_reuse: int = 8
    imbalance_ratio: float = 1.0
    noise_type: str = 'none'
    noise_rate: float = 0.0
    idx_images: Optional[str] = None
    idx_labels: Optional[str] = None
    class_names: Optional[Tuple[str, ...]] = None

    def __post_init__(self) -> None:
        # normalise types first so that equal parameters compare (and hash) equal
        for f in dataclasses.fields(self):
            if f.type is int:
                object.__setattr__(self, f.name, _as_int(f.name, getattr(self, f.name)))
            elif f.type is float:
                object.__setattr__(self, f.name, _as_float(f.name, getattr(self, f.name)))
        for name in ('idx_images', 'idx_labels'):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, os.path.abspath(os.fspath(value)))
        if self.class_names is not None:
            object.__setattr__(self, 'class_names', tuple(str(n) for n in self.class_names))
        self._validate()

    def _validate(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f'unknown source {self.source!r}; expected one of '
                             f'{", ".join(SOURCES)}')
        if self.source == 'idx':
            if not self.idx_images or not self.idx_labels:
                raise ValueError("source='idx' needs both idx_images and idx_labels "
                                 '(IDX file paths)')
        elif self.idx_images or self.idx_labels or self.class_names:
            raise ValueError("idx_images, idx_labels and class_names apply to source='idx' only, "
                             f'not source={self.source!r}')
        if self.seed < 0:
            raise ValueError(f'seed must be a non-negative integer, got {self.seed}')
        for split in SPLITS:
            if self.split_images[split] <= 0:
                raise ValueError(f'{split}_images must be positive, got {self.split_images[split]}')
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError('objects per image need 1 <= min_objects <= max_objects, got '
                             f'min_objects={self.min_objects}, max_objects={self.max_objects}')
        if not 1 <= self.min_size <= self.max_size:
            raise ValueError('object sizes need 1 <= min_size <= max_size, got '
                             f'min_size={self.min_size}, max_size={self.max_size}')
        if self.min_gap < 0:
            raise ValueError(f'min_gap must be >= 0, got {self.min_gap}')
        per_row = (self.canvas_size + self.min_gap) // (self.max_size + self.min_gap)
        if per_row * per_row < self.max_objects:
            raise ValueError(
                f'canvas_size={self.canvas_size} is too small for max_objects={self.max_objects} '
                f'objects of up to max_size={self.max_size} px with min_gap={self.min_gap}: '
                f'a {self.canvas_size}-px canvas holds only {per_row * per_row} such objects '
                'without overlap; enlarge the canvas or lower max_size / max_objects')
        if not 0 <= self.pixel_threshold < 255:
            raise ValueError(f'pixel_threshold must be in [0, 255), got {self.pixel_threshold}')
        if self.max_reuse < 1:
            raise ValueError(f'max_reuse must be >= 1, got {self.max_reuse}')
        if not self.imbalance_ratio >= 1.0:  # also rejects NaN
            raise ValueError(f'imbalance_ratio must be >= 1 (1 = balanced), got '
                             f'{self.imbalance_ratio}')
        if self.noise_type not in NOISE_TYPES:
            raise ValueError(f'unknown noise_type {self.noise_type!r}; expected one of '
                             f'{", ".join(NOISE_TYPES)}')
        if not 0.0 <= self.noise_rate < 1.0:  # also rejects NaN
            raise ValueError(f'noise_rate must be in [0, 1), got {self.noise_rate}')
        if self.noise_type == 'none' and self.noise_rate > 0:
            raise ValueError(f"noise_rate={self.noise_rate} needs a noise_type ('uniform' or "
                             "'pairflip'), not 'none'")

    @property
    def split_images(self) -> Dict[str, int]:
        """Images per split, in :data:`SPLITS` order."""
        return {split: getattr(self, f'{split}_images') for split in SPLITS}

    def to_dict(self) -> Dict[str, Any]:
        """The parameters as a JSON-ready dict (``class_names`` as a list)."""
        params = dataclasses.asdict(self)
        if params['class_names'] is not None:
            params['class_names'] = list(params['class_names'])
        return params

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> 'BenchmarkConfig':
        """Build from a dict (e.g. a config's ``benchmark=dict(...)``), rejecting unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f'unknown benchmark parameter(s) {unknown}; known: {sorted(known)}')
        return cls(**params)

    @property
    def name(self) -> str:
        """Readable, deterministic id, e.g. ``mnist-s0-uniform40-lt1-3f9a0c1e``.

        The readable part shows source, seed, label noise (type and percent) and imbalance ratio;
        the suffix is a digest of every parameter and :data:`BENCHMARK_VERSION`, so two
        configurations share a name only if they make the same data.
        """
        noise = 'clean' if self.noise_type == 'none' else \
            f'{self.noise_type}{_short_number(self.noise_rate * 100)}'
        readable = f'{self.source}-s{self.seed}-{noise}-lt{_short_number(self.imbalance_ratio)}'
        payload = json.dumps({'version': BENCHMARK_VERSION, 'params': self.to_dict()},
                             sort_keys=True)
        return f'{readable}-{hashlib.sha1(payload.encode()).hexdigest()[:8]}'


def _short_number(x: float) -> str:
    """``40.0`` -> ``'40'``, ``12.5`` -> ``'12.5'`` (no float noise like ``'40.00000001'``)."""
    return f'{round(x, 4):g}'


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f'{name} must be an integer, got {value!r}')
    try:
        return operator.index(value)
    except TypeError:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f'{name} must be an integer, got {value!r}') from None


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f'{name} must be a number, got {value!r}')
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be a number, got {value!r}') from None
