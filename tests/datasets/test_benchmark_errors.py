"""Bad input fails early with an error that names the problem, and leaves nothing behind."""
import os

import numpy as np
import pytest
from benchmark_helpers import SMALL

from mmreweight.datasets import BenchmarkConfig, make_benchmark
from mmreweight.datasets import benchmark as benchmark_module
from mmreweight.datasets import object_sources


@pytest.mark.parametrize('options, message', [
    (dict(source='cifar'), "unknown source 'cifar'"),
    (dict(noise_type='symmetric'), "unknown noise_type 'symmetric'"),
    (dict(noise_type='uniform', noise_rate=1.0), r'noise_rate must be in \[0, 1\)'),
    (dict(noise_type='uniform', noise_rate=-0.1), r'noise_rate must be in \[0, 1\)'),
    (dict(noise_type='uniform', noise_rate=float('nan')), r'noise_rate must be in \[0, 1\)'),
    (dict(noise_rate=0.2), "needs a noise_type"),
    (dict(imbalance_ratio=0.5), 'imbalance_ratio must be >= 1'),
    (dict(train_images=0), 'train_images must be positive'),
    (dict(meta_images=-3), 'meta_images must be positive'),
    (dict(val_images=2.5), 'val_images must be an integer'),
    (dict(min_objects=0), 'min_objects'),
    (dict(min_objects=3, max_objects=2), 'min_objects'),
    (dict(min_size=30, max_size=20), 'min_size'),
    (dict(max_size=64), 'canvas_size=128 is too small for max_objects=4'),
    (dict(canvas_size=40), 'canvas_size=40 is too small'),
    (dict(max_objects=30, max_size=24), 'too small for max_objects=30'),
    (dict(seed=-1), 'seed must be a non-negative'),
    (dict(source='idx'), 'needs both idx_images and idx_labels'),
    (dict(idx_images='a.gz'), "apply to source='idx' only"),
    (dict(pixel_threshold=255), 'pixel_threshold'),
    (dict(max_reuse=0), 'max_reuse'),
])
def test_invalid_parameters(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        make_benchmark(str(tmp_path / 'out'), **options)
    assert os.listdir(tmp_path) == []


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match=r"unknown benchmark parameter\(s\) \['train_size'\]"):
        BenchmarkConfig.from_dict(dict(train_size=10))


def test_missing_fashion_mnist_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(object_sources, 'FASHION_MNIST_DIR', str(tmp_path / 'absent'))
    with pytest.raises(FileNotFoundError, match='apt-get install dataset-fashion-mnist'):
        make_benchmark(str(tmp_path / 'out'), 'fashion_mnist', **SMALL)
    assert not (tmp_path / 'out').exists()


def test_missing_idx_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere-images.gz'):
        make_benchmark(str(tmp_path / 'out'), 'idx', idx_images=str(tmp_path / 'nowhere-images.gz'),
                       idx_labels=str(tmp_path / 'nowhere-labels.gz'), **SMALL)
    assert os.listdir(tmp_path) == []


def test_splits_larger_than_the_pool_allows(tmp_path):
    # MNIST-5k: train owns ~70 digits per class here; 4000 images need ~1000 per class
    with pytest.raises(ValueError, match=r"split 'train' needs .* max_reuse=2"):
        make_benchmark(str(tmp_path / 'out'), train_images=4000, val_images=20, test_images=20,
                       meta_images=20, max_reuse=2)
    assert os.listdir(tmp_path) == []


def test_pool_too_small_for_the_splits(tmp_path):
    from benchmark_helpers import write_idx
    images = np.zeros((6, 28, 28), np.uint8)
    images[:, 8:20, 8:20] = 200
    write_idx(tmp_path / 'img.idx', images)
    write_idx(tmp_path / 'lab.idx', np.array([0, 0, 0, 1, 1, 1], np.uint8))
    with pytest.raises(ValueError, match="only 3 usable object"):
        make_benchmark(str(tmp_path / 'out'), 'idx', idx_images=str(tmp_path / 'img.idx'),
                       idx_labels=str(tmp_path / 'lab.idx'), **SMALL)


def test_train_too_small_for_the_imbalance(tmp_path):
    with pytest.raises(ValueError, match="split 'train'.*would get none"):
        make_benchmark(str(tmp_path / 'out'), **dict(SMALL, train_images=3), imbalance_ratio=100)


def test_existing_folders_are_not_overwritten(tmp_path, clean_root):
    other = tmp_path / 'notes'
    other.mkdir()
    (other / 'todo.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='not an embedded benchmark'):
        make_benchmark(str(other), **SMALL)
    with pytest.raises(FileExistsError, match='not an embedded benchmark'):
        make_benchmark(str(other), force=True, **SMALL)
    assert (other / 'todo.txt').read_text() == 'keep me'
    with pytest.raises(FileExistsError, match=r"seed: 0 there, 7 wanted"):
        make_benchmark(clean_root, seed=7, **SMALL)


def test_force_replaces_a_benchmark(tmp_path):
    root = str(tmp_path / 'set')
    first = make_benchmark(root, seed=0, **SMALL)
    second = make_benchmark(root, seed=1, force=True, **SMALL)
    assert second['params']['seed'] == 1 and first['name'] != second['name']
    assert benchmark_module.load_benchmark_info(root)['params']['seed'] == 1
    assert sorted(os.listdir(tmp_path)) == ['set']  # old copy and staging folder removed


def test_an_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    real_build = benchmark_module.build_benchmark

    def build_then_die(cfg, source, out_dir):
        real_build(cfg, source, out_dir)  # everything written but not yet published
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark_module, 'build_benchmark', build_then_die)
    with pytest.raises(KeyboardInterrupt):
        make_benchmark(str(tmp_path / 'set'), **SMALL)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(benchmark_module, 'build_benchmark', real_build)
    assert make_benchmark(str(tmp_path / 'set'), **SMALL)['splits']['train']['images'] == 60


def test_an_empty_target_folder_is_filled(tmp_path):
    (tmp_path / 'set').mkdir()
    assert make_benchmark(str(tmp_path / 'set'), **SMALL)['root'] == str(tmp_path / 'set')
