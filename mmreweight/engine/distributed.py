"""CPU data-parallel training through mmengine's own launchers.

mmengine 0.10.7's ``pytorch`` launcher calls ``torch.cuda.set_device`` unconditionally ("Found no
NVIDIA driver" on a CPU machine), and the runner wraps the model in DDP with
``device_ids=[LOCAL_RANK]``, which is wrong for a CPU module. When no accelerator is present we
initialise the gloo process group ourselves (the runner then skips its own ``init_dist``) and ask
for a DDP wrapper with ``device_ids=None``. GPU runs take mmengine's normal path unchanged.
"""
import os
from datetime import timedelta

import torch
import torch.distributed as dist
from mmengine.config import Config


def uses_cpu_distributed(launcher: str) -> bool:
    """True when ``launcher`` asks for data parallelism and there is no CUDA device."""
    return launcher != 'none' and not torch.cuda.is_available()


def setup_cpu_distributed(cfg: Config, timeout_s: int = 1800) -> None:
    """Initialise gloo from the launcher's env (RANK, WORLD_SIZE, MASTER_ADDR/PORT); adapt ``cfg``.

    Only the ``pytorch`` launcher (``torchrun``) is supported on CPU.
    """
    if cfg.launcher != 'pytorch':
        raise ValueError(f'launcher "{cfg.launcher}" is not supported without a GPU; '
                         'use torchrun with --launcher pytorch')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
               if k not in os.environ]
    if missing:
        raise RuntimeError('--launcher pytorch needs the environment set by torchrun; '
                           f'missing {missing}')
    if not dist.is_initialized():
        dist.init_process_group('gloo', timeout=timedelta(seconds=timeout_s))
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
