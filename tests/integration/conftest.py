"""Fixtures of the integration tests: a private data root per module, and torch's global flags
restored after each test (``randomness.deterministic=True`` turns on
``torch.use_deterministic_algorithms`` for the whole process, which later test folders must not
inherit)."""
import os

import pytest
import torch


@pytest.fixture(scope='module', autouse=True)
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    old = os.environ.get('MMREWEIGHT_DATA_ROOT')
    os.environ['MMREWEIGHT_DATA_ROOT'] = str(root)
    yield root
    if old is None:
        del os.environ['MMREWEIGHT_DATA_ROOT']
    else:
        os.environ['MMREWEIGHT_DATA_ROOT'] = old


@pytest.fixture(autouse=True)
def restore_torch_globals():
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    threads = torch.get_num_threads()
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    torch.set_num_threads(threads)
