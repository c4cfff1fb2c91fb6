"""Mixed precision on any device.

mmengine 0.10.7's ``AmpOptimWrapper`` refuses to start without an accelerator. On CPU we run the
same training code under ``torch.autocast('cpu', dtype=torch.bfloat16)`` (bf16 has fp32's exponent
range, so no loss scaling is needed); on GPU ``--amp`` keeps mmengine's ``AmpOptimWrapper``.
"""
from contextlib import contextmanager
from typing import Iterator

import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from torch import nn

from mmreweight.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose forward context is ``torch.autocast`` on the CPU.

    Args:
        dtype: autocast dtype, ``'bfloat16'`` (default) or ``'float16'``.
        **kwargs: as :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(f'dtype must be "bfloat16" or "float16", got {dtype!r}')
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield


def enable_amp(cfg: Config) -> None:
    """Switch ``cfg.optim_wrapper`` to mixed precision for the device at hand."""
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    else:
        cfg.optim_wrapper.type = 'mmreweight.AutocastOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'
