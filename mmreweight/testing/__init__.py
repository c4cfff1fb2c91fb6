"""Helpers for mmreweight's tests and benchmarks (not imported by ``import mmreweight``).

* :mod:`.tiny_retinanet`: a tiny RetinaNet and synthetic detection batches;
* :mod:`.meta_reference`: textbook create-graph L2RW / Meta-Weight-Net to check the weighters
  against;
* :mod:`.distributed`: a gloo process group on one machine for the DDP tests;
* :mod:`.devices`: ``cpu`` / ``cuda`` test parametrisation;
* :mod:`.tools`: the repository's command-line tools as modules.
"""
from .devices import cpu_and_cuda, cuda_available
from .distributed import free_port, gloo_process_group
from .meta_reference import (detector_loss, functional, per_anchor_losses, reference_l2rw_weights,
                             reference_mwnet_hypergrad, reference_weight_grad)
from .tiny_retinanet import build_tiny_retinanet, clone_samples, synthetic_batch, tiny_retinanet_cfg
from .tools import load_tool

__all__ = [
    'cpu_and_cuda', 'cuda_available', 'free_port', 'gloo_process_group', 'detector_loss',
    'functional', 'per_anchor_losses', 'reference_l2rw_weights', 'reference_mwnet_hypergrad',
    'reference_weight_grad', 'build_tiny_retinanet', 'clone_samples', 'synthetic_batch',
    'tiny_retinanet_cfg', 'load_tool'
]
