"""Reweighting losses for dense detectors: focal, GHM-C, GHM-R and class-balanced focal.

Each loss is a pure function returning the unreduced loss (``sigmoid_focal_loss``, ...) and a
thin registered ``nn.Module`` with mmdet's call signature around it.
"""
from .base import ReweightLoss
from .class_balanced import CBFocalLoss, anchor_class_weights, class_balanced_weights
from .focal import FocalLoss, sigmoid_focal_loss
from .ghm import GHMC, GHMR, asl1_gradient_norm, authentic_smooth_l1, bce_gradient_norm
from .gradient_density import ghm_edges, gradient_density, harmonizing_weights
from .state import count_fpn_levels, frozen_loss_statistics, reweight_losses
from .utils import one_hot_targets, weight_reduce

__all__ = [
    'ReweightLoss', 'FocalLoss', 'GHMC', 'GHMR', 'CBFocalLoss', 'sigmoid_focal_loss',
    'authentic_smooth_l1', 'bce_gradient_norm', 'asl1_gradient_norm', 'ghm_edges',
    'gradient_density', 'harmonizing_weights', 'class_balanced_weights', 'anchor_class_weights',
    'count_fpn_levels', 'frozen_loss_statistics', 'reweight_losses', 'one_hot_targets',
    'weight_reduce'
]
