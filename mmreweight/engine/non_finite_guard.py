"""NonFiniteGuardHook: stop training at the first non-finite loss or parameter.

mmengine trains on through NaN losses: the optimizer step turns every parameter NaN, and the
next checkpoints save that model, rotating the last good one away. This hook runs after each
training step and before the checkpoint hook, so a run stops with an error naming the iteration
and the loss term, and the last checkpoint on disk is the last finite one.
"""
import math
from typing import Any, Dict, Optional

import torch
from mmengine.hooks import Hook
from mmengine.hooks.hook import DATA_BATCH
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmreweight.registry import HOOKS


def _finite(value) -> bool:
    return bool(torch.isfinite(value).all()) if isinstance(value, torch.Tensor) \
        else math.isfinite(value)


def first_non_finite_loss(outputs: Optional[Dict[str, Any]]) -> Optional[str]:
    """Name of the first loss term in a train step's log variables that is not finite; the
    total ``loss`` is reported only when no term is (a term names the cause)."""
    if not outputs:
        return None
    bad = [name for name, value in outputs.items() if 'loss' in name
           and isinstance(value, (float, int, torch.Tensor)) and not _finite(value)]
    terms = [name for name in bad if name != 'loss']
    return (terms or bad or [None])[0]


def first_non_finite_parameter(model: torch.nn.Module) -> Optional[str]:
    """Name of the first parameter of ``model`` with a NaN or infinite element."""
    for name, param in model.named_parameters():
        if not torch.isfinite(param).all():
            return name
    return None


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Raise ``FloatingPointError`` after the first training step whose loss, or whose updated
    parameters, are not finite (see the module docstring). Add it to any config with one line::

        default_hooks = dict(non_finite=dict(type='mmreweight.NonFiniteGuardHook'))

    Args:
        check_parameters: also check every parameter after the step: catches a non-finite
            gradient that a finite loss produced (one pass over the parameters per check).
        interval: check every ``interval`` iterations (the loss is checked every iteration).
    """
    priority = 'ABOVE_NORMAL'  # before the logger and the checkpoint hook save anything

    def __init__(self, check_parameters: bool = True, interval: int = 1) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'NonFiniteGuardHook: interval must be a positive int, got '
                             f'{interval!r}')
        self.check_parameters = check_parameters
        self.interval = interval

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        iteration = runner.iter + 1
        hint = ('; the last checkpoint in the work dir is the last finite one. Lower the learning '
                'rate, enable gradient clipping (optim_wrapper.clip_grad) or check the data')
        term = first_non_finite_loss(outputs)
        if term is not None:
            value = torch.as_tensor(outputs[term]).detach().float().mean().item()
            raise FloatingPointError(f'non-finite {term} ({value}) at iteration {iteration}{hint}')
        if self.check_parameters and self.every_n_train_iters(runner, self.interval):
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            name = first_non_finite_parameter(model)
            if name is not None:
                raise FloatingPointError(
                    f'parameter {name} became non-finite at iteration {iteration} (a non-finite '
                    f'gradient from a finite loss){hint}')


__all__ = ['NonFiniteGuardHook', 'first_non_finite_loss', 'first_non_finite_parameter']
