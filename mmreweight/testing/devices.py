"""Device parametrisation for tests whose code has a device-specific path."""
from typing import List

import torch


def cuda_available() -> bool:
    return torch.cuda.is_available()


def cpu_and_cuda() -> List:
    """``['cpu', cuda]`` for ``pytest.mark.parametrize``: the ``cuda`` param carries the
    ``needs_cuda`` marker (``tools/gpu_check.sh`` selects on it) and is skipped without a GPU."""
    # pytest is a test-only dependency; the tools that import mmreweight.testing run without it.
    import pytest
    cuda = pytest.param('cuda', marks=(pytest.mark.needs_cuda,
                                       pytest.mark.skipif(not cuda_available(),
                                                          reason='needs a CUDA device')))
    return ['cpu', cuda]


__all__ = ['cpu_and_cuda', 'cuda_available']
