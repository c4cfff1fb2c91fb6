"""Shared small benchmarks, generated once per test session."""
import pytest
from benchmark_helpers import NOISY, SMALL

from mmreweight.datasets import make_benchmark


@pytest.fixture(scope='session')
def bench_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('benchmarks')


@pytest.fixture(scope='session')
def clean_root(bench_dir):
    return make_benchmark(str(bench_dir / 'clean'), 'mnist', seed=0, **SMALL)['root']


@pytest.fixture(scope='session')
def noisy_root(bench_dir):
    return make_benchmark(str(bench_dir / 'noisy'), 'mnist', seed=0, **SMALL, **NOISY)['root']
