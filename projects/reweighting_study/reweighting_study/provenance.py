"""Where a study run ran: the CPU, the kernels torch picked for it, and the code's commit.

A run repeats to the last digit only on the same CPU and code. The same config and seed gave
focal 0.770 on one machine and 0.787 on another (study note, item 16), so a record keeps what
it ran on, and a report can tell a changed number's cause from a changed method. mmengine's
environment block in the training log names the kernel ISA too, but not the CPU or the commit.
"""
import os
import platform
import subprocess
from typing import Optional

import torch


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows of it."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def code_version(repo: str) -> Optional[str]:
    """HEAD's commit of the checkout at ``repo``, with ``+dirty`` when tracked files differ from
    it; None outside a git checkout (e.g. an installed package)."""
    def git(*args: str) -> str:
        return subprocess.run(['git', *args], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        head = git('rev-parse', 'HEAD')
        dirty = git('status', '--porcelain', '--untracked-files=no')
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ('+dirty' if dirty else '')


def machine_info(repo: str) -> dict:
    """What a run's numbers depend on besides its config and seed."""
    return dict(cpu=cpu_model(),
                # the vector ISA ATen dispatches to (e.g. AVX2 vs AVX512): kernels of another
                # width may sum floats in another order, and training amplifies the last digits
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                cores=os.cpu_count(), torch=torch.__version__, commit=code_version(repo))
