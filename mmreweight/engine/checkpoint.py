"""Loading mmengine checkpoints under torch >= 2.6's ``torch.load(weights_only=True)`` default.

mmengine 0.10.7 calls ``torch.load(filename)`` and its checkpoints hold a ``MessageHub`` state with
``HistoryBuffer`` objects and numpy arrays, which the safe unpickler refuses: resume and test fail.
Rather than turning safety off for every file, we

* allow-list exactly the types that mmengine's own checkpoints contain (``HistoryBuffer``, numpy
  arrays, dtypes and scalars), and load with ``weights_only=True``;
* make ``HistoryBuffer`` pickle as ``HistoryBuffer(log_history, count_history, max_length)``
  (mmengine's default pickling also stores bound statistic methods through ``getattr``, which a safe
  unpickler must not allow);
* load a file that still needs more (an older or foreign checkpoint) only when the user says it is
  trusted (``MMREWEIGHT_TRUST_CHECKPOINTS=1``), and otherwise fail with an error that says so.

Installed once on ``import mmreweight`` by :func:`install_safe_checkpoint_loading`.
"""
import importlib
import os
import os.path as osp
import pickle
from typing import Any, List

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from mmreweight.utils.loading import NEEDS_MORE_TYPES as _NEEDS_MORE_TYPES

TRUST_ENV = 'MMREWEIGHT_TRUST_CHECKPOINTS'


def _history_buffer_reduce(self: HistoryBuffer):
    return HistoryBuffer, (self._log_history, self._count_history, self.max_length)


def _safe_globals() -> List[Any]:
    """Types found in mmengine checkpoints that carry data only (no code)."""
    try:  # numpy >= 2 moved (and pickles from) numpy._core
        multiarray = importlib.import_module('numpy._core.multiarray')
    except ImportError:
        multiarray = importlib.import_module('numpy.core.multiarray')
    types = [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    types += [type(np.dtype(t)) for t in ('f2', 'f4', 'f8', 'i1', 'i2', 'i4', 'i8', 'u1', 'b1')]
    return types


def load_checkpoint_file(filename: str, map_location=None) -> Any:
    """``torch.load`` a local checkpoint safely (``weights_only=True`` + mmengine's data types).

    Raises:
        FileNotFoundError: the file does not exist.
        RuntimeError: the file is not a readable checkpoint (truncated, corrupt), or it needs types
            outside the allow-list and ``MMREWEIGHT_TRUST_CHECKPOINTS=1`` is not set.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if not _NEEDS_MORE_TYPES.search(str(err)):
            raise _corrupt(filename, err) from err
        if os.environ.get(TRUST_ENV) == '1':
            return torch.load(filename, map_location=map_location, weights_only=False)
        raise RuntimeError(
            f'checkpoint {filename} holds objects outside the safe allow-list of mmengine '
            f'checkpoint types ({err}). If you trust this file, set {TRUST_ENV}=1 to load it '
            'with full unpickling.') from err
    except Exception as err:  # noqa: B902
        # The weights-only unpickler runs no code from the file, so whatever else it raises
        # (BadZipFile, EOFError, and on random bytes IndexError, AssertionError, ...) is about
        # the file's bytes.
        raise _corrupt(filename, err) from err


def _corrupt(filename: str, err: Exception) -> RuntimeError:
    return RuntimeError(f'checkpoint {filename} is corrupt or truncated and cannot be loaded: '
                        f'{type(err).__name__}: {err}')


def install_safe_checkpoint_loading() -> None:
    """Route mmengine's local checkpoint loading through :func:`load_checkpoint_file`."""
    HistoryBuffer.__reduce__ = _history_buffer_reduce
    CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)
