"""A gloo process group on one machine, for the tests that check the DDP paths on the CPU."""
import contextlib
import os
import socket
from typing import Iterator

import torch
import torch.distributed as dist


def free_port() -> int:
    """A TCP port of 127.0.0.1 that the OS found free a moment ago (for MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gloo_process_group(rank: int, world_size: int, port: int) -> Iterator[None]:
    """Join a gloo group on 127.0.0.1:`port` as `rank` for the body, and always leave it.

    One torch thread per rank: the ranks share the machine's cores.
    """
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        dist.destroy_process_group()
