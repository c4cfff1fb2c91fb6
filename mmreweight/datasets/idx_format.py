"""Reader for the IDX format of MNIST-style data sets (plain or gzip-compressed).

An IDX file is: two zero bytes, one type byte, one byte with the number of dimensions, then one
big-endian uint32 per dimension, then the array in C order, big-endian.
"""
import gzip
import os
from typing import Union

import numpy as np

# IDX type byte -> numpy dtype (big-endian, as the format stores it).
_IDX_DTYPES = {
    0x08: np.dtype('u1'),
    0x09: np.dtype('i1'),
    0x0B: np.dtype('>i2'),
    0x0C: np.dtype('>i4'),
    0x0D: np.dtype('>f4'),
    0x0E: np.dtype('>f8'),
}
_GZIP_MAGIC = b'\x1f\x8b'


def read_idx(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read one IDX file into a numpy array (native byte order).

    Compression is detected from the file's first bytes, not its name, so ``*.gz`` files that were
    already decompressed (as some browsers do) still read.

    Args:
        path: the IDX file, plain or gzip-compressed.

    Returns:
        The array with the file's shape and element type.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a well-formed IDX file (bad magic, unknown type byte, or a
            payload whose size does not match the header).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'IDX file not found: {path}')
    with open(path, 'rb') as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f'{path} is not an IDX file: it must start with two zero bytes')
    type_byte, ndim = raw[2], raw[3]
    if type_byte not in _IDX_DTYPES:
        raise ValueError(f'{path}: unknown IDX element type 0x{type_byte:02x}')
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(f'{path}: truncated IDX header')
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype='>u4', count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_byte]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header_len != expected:
        raise ValueError(f'{path}: the header announces shape {shape} ({expected} bytes of data) '
                         f'but the file holds {len(raw) - header_len} bytes after the header')
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder('='), copy=True)
