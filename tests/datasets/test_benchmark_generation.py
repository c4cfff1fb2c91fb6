"""Content of generated benchmarks, checked against the image pixels and the source files."""
import filecmp
import os

import cv2
import numpy as np
import pytest
from benchmark_helpers import SMALL, anns_by_image, load_coco, mnist_table, read_image

from mmreweight.datasets import SPLITS, load_benchmark_info, make_benchmark

THRESHOLD, MIN_SIZE, MAX_SIZE, CANVAS, GAP = 32, 20, 48, 128, 2  # the defaults


def _tree(root):
    """Relative path -> absolute path of every file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = full
    return out


def test_same_seed_gives_byte_identical_files(clean_root, tmp_path):
    again = make_benchmark(str(tmp_path / 'again'), 'mnist', seed=0, **SMALL)['root']
    first, second = _tree(clean_root), _tree(again)
    assert sorted(first) == sorted(second)
    assert len(first) == sum(SMALL.values()) + len(SPLITS) + 1  # PNGs, annotation files, info
    mismatched = [rel for rel in first if not filecmp.cmp(first[rel], second[rel], shallow=False)]
    assert mismatched == []


def test_other_seed_gives_other_data(clean_root, tmp_path):
    other = make_benchmark(str(tmp_path / 'other'), 'mnist', seed=1, **SMALL)['root']
    for split in SPLITS:
        a, b = load_coco(clean_root, split), load_coco(other, split)
        assert [x['bbox'] for x in a['annotations']] != [x['bbox'] for x in b['annotations']]
    img_a = read_image(clean_root, 'train', load_coco(clean_root, 'train')['images'][0])
    img_b = read_image(other, 'train', load_coco(other, 'train')['images'][0])
    assert not np.array_equal(img_a, img_b)
    assert load_benchmark_info(other)['name'] != load_benchmark_info(clean_root)['name']


def test_splits_are_disjoint_in_images_files_and_source_objects(clean_root):
    ids, files, basenames, sources = {}, {}, {}, {}
    for split in SPLITS:
        coco = load_coco(clean_root, split)
        assert len(coco['images']) == SMALL[f'{split}_images']
        assert {im['split'] for im in coco['images']} == {split}
        ids[split] = {im['id'] for im in coco['images']}
        files[split] = {os.path.realpath(os.path.join(clean_root, split, im['file_name']))
                        for im in coco['images']}
        basenames[split] = {im['file_name'] for im in coco['images']}
        sources[split] = {a['source_index'] for a in coco['annotations']}
        assert all(os.path.isfile(f) for f in files[split])
        assert len(files[split]) == len(coco['images'])
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not ids[a] & ids[b], (a, b)
            assert not files[a] & files[b], (a, b)
            assert not basenames[a] & basenames[b], (a, b)
            assert not sources[a] & sources[b], (a, b)
    ann_ids = [a['id'] for s in SPLITS for a in load_coco(clean_root, s)['annotations']]
    assert len(ann_ids) == len(set(ann_ids))


@pytest.mark.parametrize('split', SPLITS)
def test_boxes_are_tight_on_the_pixels_and_do_not_overlap(clean_root, split):
    coco = load_coco(clean_root, split)
    per_image = anns_by_image(coco)
    for image in coco['images']:
        img = read_image(clean_root, split, image)
        assert img.shape == (CANVAS, CANVAS) == (image['height'], image['width'])
        mask = img > THRESHOLD
        anns = per_image[image['id']]
        assert 1 <= len(anns) <= 4
        covered = np.zeros_like(mask)
        for a in anns:
            x, y, w, h = a['bbox']
            assert 0 <= x and 0 <= y and x + w <= CANVAS and y + h <= CANVAS
            inside = mask[y:y + h, x:x + w]
            # tight: each border row/column of the box holds an object pixel
            assert inside[0].any() and inside[-1].any(), a
            assert inside[:, 0].any() and inside[:, -1].any(), a
            assert a['area'] == w * h
            assert not covered[y:y + h, x:x + w].any(), 'boxes overlap'
            covered[y:y + h, x:x + w] = True
        # every object pixel is inside some box
        assert not (mask & ~covered).any()
        # and boxes keep the gap: grown by GAP on one side they still do not touch
        boxes = np.array([a['bbox'] for a in anns])
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                (x1, y1, w1, h1), (x2, y2, w2, h2) = boxes[i], boxes[j]
                apart_x = x2 >= x1 + w1 + GAP or x1 >= x2 + w2 + GAP
                apart_y = y2 >= y1 + h1 + GAP or y1 >= y2 + h2 + GAP
                assert apart_x or apart_y, (boxes[i], boxes[j])


def test_object_sizes_are_in_range_and_vary(clean_root):
    sides = np.array([max(a['bbox'][2:]) for s in SPLITS
                      for a in load_coco(clean_root, s)['annotations']])
    assert sides.min() >= MIN_SIZE and sides.max() <= MAX_SIZE
    # drawn uniformly over the range, not stuck at one end
    assert sides.min() <= MIN_SIZE + 4 and sides.max() >= MAX_SIZE - 4
    assert 30 <= np.median(sides) <= 38


def test_true_labels_and_pixels_come_from_the_recorded_source_object(noisy_root):
    images, labels = mnist_table()
    for split in SPLITS:
        coco = load_coco(noisy_root, split)
        by_id = {im['id']: im for im in coco['images']}
        for a in coco['annotations']:
            assert a['clean_category_id'] - 1 == labels[a['source_index']]
        # the pasted patch is the source digit rescaled: compare on a sample
        for a in coco['annotations'][:40]:
            x, y, w, h = a['bbox']
            patch = read_image(noisy_root, split, by_id[a['image_id']])[y:y + h, x:x + w]
            digit = images[a['source_index']]
            rows, cols = np.flatnonzero((digit > THRESHOLD).any(1)), \
                np.flatnonzero((digit > THRESHOLD).any(0))
            crop = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)
            back = cv2.resize(patch.astype(np.float32), crop.shape[::-1],
                              interpolation=cv2.INTER_AREA)
            corr = np.corrcoef(back.ravel(), crop.ravel())[0, 1]
            assert corr > 0.8, (a, corr)
            assert a['scale'] == pytest.approx(max(w, h) / max(crop.shape), abs=1e-4)


def test_meta_val_test_are_clean_and_class_balanced(clean_root):
    for split in ('val', 'test', 'meta'):
        coco = load_coco(clean_root, split)
        cats = np.array([a['category_id'] for a in coco['annotations']])
        clean = np.array([a['clean_category_id'] for a in coco['annotations']])
        assert np.array_equal(cats, clean)
        assert not any(a['noisy'] for a in coco['annotations'])
        counts = np.bincount(clean, minlength=11)[1:]
        assert counts.min() >= 1 and counts.max() - counts.min() <= 1, (split, counts)


def test_info_records_parameters_and_counts(noisy_root):
    info = load_benchmark_info(noisy_root)
    assert info['version'] == 1
    assert info['params']['noise_rate'] == 0.4 and info['params']['train_images'] == 60
    assert info['classes'] == [str(d) for d in range(10)]
    assert info['name'].startswith('mnist-s0-uniform40-lt1-')
    for split in SPLITS:
        coco = load_coco(noisy_root, split)
        assert info['splits'][split]['images'] == len(coco['images'])
        assert info['splits'][split]['objects'] == len(coco['annotations'])
        assert info['splits'][split]['flipped'] == sum(a['noisy'] for a in coco['annotations'])
        used = {a['source_index'] for a in coco['annotations']}
        assert info['splits'][split]['distinct_source_objects_used'] == len(used)
        assert len(used) <= info['splits'][split]['source_objects']


def test_train_only_options_leave_val_test_meta_unchanged(clean_root, noisy_root, tmp_path):
    longtail = make_benchmark(str(tmp_path / 'lt'), 'mnist', seed=0, imbalance_ratio=10, **SMALL)
    for other in (noisy_root, longtail['root']):
        for split in ('val', 'test', 'meta'):
            a, b = _tree(os.path.join(clean_root, split)), _tree(os.path.join(other, split))
            assert all(filecmp.cmp(a[k], b[k], shallow=False) for k in a)
            assert load_coco(clean_root, split)['annotations'] == \
                load_coco(other, split)['annotations']


def test_label_noise_changes_labels_only(clean_root, noisy_root):
    clean, noisy = load_coco(clean_root, 'train'), load_coco(noisy_root, 'train')
    assert clean['images'] == noisy['images']
    for a, b in zip(clean['annotations'], noisy['annotations'], strict=True):
        assert (a['bbox'], a['source_index'], a['clean_category_id']) == \
            (b['bbox'], b['source_index'], b['clean_category_id'])
    a, b = _tree(os.path.join(clean_root, 'train')), _tree(os.path.join(noisy_root, 'train'))
    assert all(filecmp.cmp(a[k], b[k], shallow=False) for k in a)
