r"""Shared plumbing of the meta weighters (L2RW, Meta-Weight-Net): binding to a detector, the
learning rates of :math:`\theta`, DDP reductions and the global mean-one normalisation."""
import functools
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Sequence, Union

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .alignment import THETA_CHOICES, ThetaView, build_theta_view
from .base import AnchorWeighter, global_count_and_sum  # noqa: F401 (re-exported)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_reduce_(tensors: Sequence[Tensor], average: bool) -> None:
    """In-place sum (or mean) over ranks of a list of tensors, as one flat all-reduce."""
    n = world_size()
    if n == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    if average:
        flat /= n
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def all_reduce_mean_(tensors: Sequence[Tensor]) -> None:
    _all_reduce_(tensors, average=True)


def all_reduce_sum_(tensors: Sequence[Tensor]) -> None:
    _all_reduce_(tensors, average=False)


def scatter_valid(values: Tensor, valid: Tensor) -> Tensor:
    """(N,) tensor with ``values`` at the valid anchors and 0 elsewhere."""
    out = values.new_zeros(valid.shape)
    out[valid] = values
    return out


@contextmanager
def flushed_denormals() -> Iterator[None]:
    """Flush float denormals to zero on the CPU inside the block (restoring the previous mode).

    Meta gradients multiply focal-loss gradients of easy anchors (~1e-18) by small features and
    learning rates; the products underflow into denormals, which x86 CPUs process 10-100x slower
    (a 3x slower Meta-Weight-Net step on the benchmark model). Values below 1.2e-38 change no
    weight.
    """
    probe = torch.tensor([1e-39], dtype=torch.float32)  # a float32 denormal unless flushed
    was_flushing = bool((probe * 1.0 == 0).item())
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if not was_flushing:
            torch.set_flush_denormal(False)


def cpu_flushed_denormals(method):
    """Decorator: run ``method`` under :func:`flushed_denormals`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with flushed_denormals():
            return method(*args, **kwargs)

    return wrapper


LrSpec = Union[float, Callable[[Sequence[nn.Parameter]], List[float]]]


class MetaAnchorWeighter(AnchorWeighter):
    r"""Base of weighters driven by a clean (meta) batch through the gradient of
    :math:`L_\mathrm{clean}` with respect to :math:`\theta`.

    Life cycle (driven by :class:`MetaReweightHook`): :meth:`bind` to the unwrapped detector once;
    on meta iterations :meth:`prepare_clean` with a preprocessed clean batch before the training
    step; then the head calls :meth:`forward` inside its loss.

    Args:
        theta: which parameters the one-step look-ahead moves: ``'cls_out'`` (the classification
            output conv, default), ``'head'`` (the head's classification branch) or ``'all'``.
        clean_target_cache_mb: memory for the clean images' anchor targets, kept from one visit
            of an image to the next (:class:`~mmreweight.weighting.clean_targets.
            CleanTargetCache`; exact, heads with a random sampler are never cached); 0: none.
    """
    needs_clean_batch = True
    #: whether a batch's weights are computed from the clean batch drawn for it (L2RW), rather
    #: than from a state the clean batch trains (MW-Net's VNet): what a read-only diagnosis needs
    weights_from_clean_batch = True

    def __init__(self, theta: str = 'cls_out', clean_target_cache_mb: float = 256) -> None:
        super().__init__()
        if theta not in THETA_CHOICES:
            raise ValueError(f'theta must be one of {THETA_CHOICES}, got {theta!r}.')
        if clean_target_cache_mb < 0:
            raise ValueError(f'clean_target_cache_mb must be >= 0, got {clean_target_cache_mb}')
        self.theta = theta
        self.clean_target_cache_mb = clean_target_cache_mb
        self.progress = 0.0
        self.__dict__['view'] = None  # plain attribute: holds the detector, not a submodule
        self._lr: LrSpec = 1.0
        self._scalars: Dict[str, float] = {}

    def bind(self, detector: nn.Module, lr: LrSpec = 1.0) -> 'MetaAnchorWeighter':
        """Attach to ``detector`` (unwrapped). ``lr`` is the inner step size: a float, or a function
        mapping :math:`\\theta`'s parameters to their current learning rates."""
        self.unbind()
        self.__dict__['view'] = build_theta_view(detector, self.theta,
                                                 self.clean_target_cache_mb)
        self._lr = lr
        return self

    def unbind(self) -> None:
        view = self.__dict__.get('view')
        if view is not None and hasattr(view, 'remove'):
            view.remove()
        self.__dict__['view'] = None

    def _view(self) -> ThetaView:
        if self.view is None:
            raise RuntimeError(f'{type(self).__name__} is not bound to a detector; '
                               'MetaReweightHook binds it in before_train.')
        return self.view

    def lrs(self) -> List[float]:
        params = self._view().params
        if callable(self._lr):
            return [float(a) for a in self._lr(params)]
        return [float(self._lr)] * len(params)

    def prepare_clean(self, inputs: Tensor, data_samples) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def log_scalars(self) -> Dict[str, float]:
        return dict(self._scalars)

    def extra_repr(self) -> str:
        return f'theta={self.theta!r}'


__all__ = ['MetaAnchorWeighter', 'flushed_denormals', 'cpu_flushed_denormals', 'world_size',
           'all_reduce_mean_', 'all_reduce_sum_', 'global_count_and_sum', 'scatter_valid']
