"""Reading JSON and torch files with errors that name the file, what it was meant to be, and the
fix: a bare ``JSONDecodeError`` or ``EOFError`` says neither which file nor what to do."""
import json
import os
import pickle
import re
from typing import Any, Optional

import torch
from mmengine import fileio

# What torch's weights-only unpickler says when a well-formed pickle needs a type it does not
# allow. Anything else it raises (an unknown opcode, a string too long, ...) means the bytes are
# not a torch file, and full unpickling would not help.
NEEDS_MORE_TYPES = re.compile(r'GLOBAL|allowlist|unrecognized function|is blocked|'
                              r'must be imported')


def _is_remote(path: str, backend_args: Optional[dict]) -> bool:
    return bool(backend_args) or '://' in str(path)


def load_json(path: str, what: str = 'JSON file', fix: str = 'check the path',
              backend_args: Optional[dict] = None) -> Any:
    """The parsed JSON at ``path``.

    Args:
        path: a local path, or any path mmengine's file backends read (with ``backend_args``).
        what: what the file is, for messages (``'annotation file'``).
        fix: how to repair it, appended to messages (``'re-export it or fix the path'``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is empty, not UTF-8 text, or not valid JSON (with line and column).
    """
    if _is_remote(path, backend_args):
        if not fileio.exists(path, backend_args=backend_args):
            raise FileNotFoundError(f'{what} {path} does not exist; {fix}')
        raw = fileio.get(path, backend_args=backend_args)
    else:
        if not os.path.isfile(path):
            raise FileNotFoundError(f'{what} {path} does not exist; {fix}')
        with open(path, 'rb') as f:
            raw = f.read()
    if not raw.strip():
        raise ValueError(f'{what} {path} is empty ({len(raw)} bytes); {fix}')
    try:
        return json.loads(raw.decode('utf-8'))
    except UnicodeDecodeError as err:
        raise ValueError(f'{what} {path} is not UTF-8 text (byte {err.start}); {fix}') from None
    except json.JSONDecodeError as err:
        raise ValueError(f'{what} {path} is not valid JSON (line {err.lineno} col {err.colno}): '
                         f'{err.msg}; {fix}') from None


def load_torch_file(path: str, what: str = 'torch file', fix: str = 'check the path',
                    map_location: Any = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` with errors naming the file and the fix.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is empty, truncated or corrupt, or holds Python objects the safe
            loader refuses (e.g. a detector checkpoint with mmengine's ``MessageHub`` given where
            another kind of file belongs): such a file is not a ``what``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{what} {path} does not exist; {fix}')
    if os.path.getsize(path) == 0:
        raise ValueError(f'{what} {path} is empty (0 bytes); {fix}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if NEEDS_MORE_TYPES.search(str(err)):
            first = str(err).strip().splitlines()[-1][:200]
            raise ValueError(
                f'{path} is not a {what}: it holds Python objects beyond tensors and plain '
                f'containers (as a detector checkpoint does), which are not loaded ({first}); '
                f'{fix}') from None
        raise _corrupt(path, what, fix, err) from None
    except Exception as err:  # noqa: B902
        # The weights-only unpickler runs no code from the file, so whatever else it raises
        # (EOFError, BadZipFile, RuntimeError from the zip reader, ...) is about the bytes.
        raise _corrupt(path, what, fix, err) from None


def _corrupt(path: str, what: str, fix: str, err: Exception) -> ValueError:
    return ValueError(f'{what} {path} is truncated or corrupt ({type(err).__name__}: '
                      f'{str(err)[:200]}); {fix}')


__all__ = ['NEEDS_MORE_TYPES', 'load_json', 'load_torch_file']
