"""Label noise and long-tail imbalance: rates, ratios and mappings, computed independently."""
import numpy as np
import pytest
from benchmark_helpers import SMALL, load_coco

from mmreweight.datasets import make_benchmark, read_class_counts
from mmreweight.datasets.class_counts import apportion, class_counts
from mmreweight.datasets.label_noise import flip_labels


def _train_labels(root):
    anns = load_coco(root, 'train')['annotations']
    given = np.array([a['category_id'] for a in anns]) - 1
    clean = np.array([a['clean_category_id'] for a in anns]) - 1
    flags = np.array([a['noisy'] for a in anns])
    return given, clean, flags


def test_uniform_noise_flips_exactly_the_rate(noisy_root):
    given, clean, flags = _train_labels(noisy_root)
    assert np.array_equal(flags, given != clean)
    # exact count: round(0.4 * N), not a Bernoulli draw
    assert flags.sum() == int(np.floor(0.4 * len(given) + 0.5))


@pytest.mark.parametrize('rate', [0.2, 0.45])
def test_pairflip_maps_each_class_to_the_next(tmp_path, rate):
    root = make_benchmark(str(tmp_path / 'pf'), 'mnist', seed=3, noise_type='pairflip',
                          noise_rate=rate, **SMALL)['root']
    given, clean, flags = _train_labels(root)
    assert flags.sum() == int(np.floor(rate * len(given) + 0.5))
    assert np.array_equal(given[flags], (clean[flags] + 1) % 10)
    assert np.array_equal(given[~flags], clean[~flags])


def test_clean_set_has_no_flips(clean_root):
    given, clean, flags = _train_labels(clean_root)
    assert not flags.any() and np.array_equal(given, clean)


def test_uniform_flips_spread_over_the_other_classes():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 20000)
    noisy = flip_labels(labels, 'uniform', 0.3, 5, rng)
    flipped = noisy != labels
    assert flipped.sum() == 30000
    # transition matrix off the diagonal: 1/4 each, never to the same class
    for c in range(5):
        targets = np.bincount(noisy[flipped & (labels == c)], minlength=5)
        assert targets[c] == 0
        shares = np.delete(targets, c) / targets.sum()
        assert np.allclose(shares, 0.25, atol=0.02), shares
    # flips are spread over classes (about 30% of each)
    per_class = np.bincount(labels[flipped], minlength=5) / 20000
    assert np.allclose(per_class, 0.3, atol=0.02)


def test_apportion_sums_exactly_and_stays_within_one():
    rng = np.random.default_rng(1)
    for _ in range(200):
        weights = rng.random(rng.integers(1, 12)) + 1e-3
        total = int(rng.integers(0, 10000))
        shares = apportion(total, weights)
        assert shares.sum() == total
        assert np.all(np.abs(shares - total * weights / weights.sum()) < 1)


@pytest.mark.parametrize('ratio', [10.0, 50.0, 100.0])
def test_long_tail_profile(ratio):
    counts = class_counts(5000, 10, ratio)
    # independent formula: n_c = n_max * ratio ** (-c / (C - 1)), scaled to 5000 objects
    profile = np.array([ratio ** (-c / 9) for c in range(10)])
    assert np.all(np.abs(counts - 5000 * profile / profile.sum()) < 1)
    assert counts.sum() == 5000 and np.all(np.diff(counts) <= 0)
    assert counts[0] / counts[-1] == pytest.approx(ratio, rel=0.06)


def test_generated_train_split_is_long_tailed(tmp_path):
    options = dict(SMALL, train_images=800)
    root = make_benchmark(str(tmp_path / 'lt'), 'mnist', seed=0, imbalance_ratio=50,
                          noise_type='uniform', noise_rate=0.2, **options)['root']
    _, clean, _ = _train_labels(root)
    counts = np.bincount(clean, minlength=10)
    profile = 50.0 ** (-np.arange(10) / 9)
    assert np.all(np.abs(counts - len(clean) * profile / profile.sum()) < 1)
    assert counts.max() / counts.min() == pytest.approx(50, rel=0.1)
    # the helper reads the same counts (true labels), and the noisy ones differ
    assert list(read_class_counts(root, 'train', labels='clean').values()) == counts.tolist()
    assert list(read_class_counts(root, 'train').values()) != counts.tolist()
    # the other splits stay balanced
    for split in ('val', 'test', 'meta'):
        other = np.array(list(read_class_counts(root, split).values()))
        assert other.max() - other.min() <= 1
    # the head class reuses its pool objects (different scale/position), within max_reuse
    anns = load_coco(root, 'train')['annotations']
    uses = np.bincount([a['source_index'] for a in anns])
    assert uses.max() <= 8
