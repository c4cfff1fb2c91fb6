"""Reweighting losses for dense detectors: focal, GHM-C, GHM-R and class-balanced focal.

Each loss is a pure function returning the unreduced loss (``sigmoid_focal_loss``, ...) and a
thin registered ``nn.Module`` with mmdet's call signature around it.
"""
from .base import ReweightLoss
from .focal import FocalLoss, sigmoid_focal_loss
from .state import count_fpn_levels, frozen_loss_statistics, reweight_losses
from .utils import one_hot_targets, weight_reduce

__all__ = [
    'ReweightLoss', 'FocalLoss', 'sigmoid_focal_loss', 'count_fpn_levels',
    'frozen_loss_statistics', 'reweight_losses', 'one_hot_targets', 'weight_reduce'
]
