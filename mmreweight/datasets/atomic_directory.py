"""Atomic creation of a directory: build it under a temporary name next to the target, then rename.

A rename within one file system is atomic, so readers see either no directory or a complete one,
whether the writer is interrupted or several processes (e.g. DDP ranks) race to create it.
"""
import contextlib
import errno
import os
import shutil
import tempfile
from typing import Iterator


@contextlib.contextmanager
def staging_directory(target: str) -> Iterator[str]:
    """A fresh empty directory next to ``target`` (same file system), removed on exit if left.

    Its name starts with ``.<target name>.tmp-`` so it is hidden and recognisable; only a killed
    process (no chance to clean up) leaves one behind.
    """
    target = os.path.abspath(target)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f'.{os.path.basename(target)}.tmp-', dir=parent)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_directory(staging: str, target: str, replace: bool = False) -> bool:
    """Rename the complete ``staging`` directory to ``target``.

    Args:
        staging: a directory from :func:`staging_directory`.
        target: the final path.
        replace: move an existing ``target`` out of the way first (it is deleted afterwards); there
            is a short window in which ``target`` does not exist.

    Returns:
        True if ``staging`` became ``target``; False if ``target`` already existed (another process
        won the race) and ``replace`` is False, in which case ``staging`` is left as it is.
    """
    target = os.path.abspath(target)
    trash = None
    if replace and os.path.lexists(target):
        trash = tempfile.mkdtemp(prefix=f'.{os.path.basename(target)}.old-',
                                 dir=os.path.dirname(target))
        os.rename(target, os.path.join(trash, 'old'))
    try:
        os.rename(staging, target)
    except OSError as err:
        # POSIX rename onto a non-empty directory fails with ENOTEMPTY (or EEXIST)
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        return False
    finally:
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    return True
