"""MentorNet (Jiang et al., 2018) for dense detectors.

* :mod:`.weighter`: :class:`MentorNetWeighter`, the registered per-anchor weighter;
* :mod:`.inputs`: the mentor's per-anchor inputs and the percentile-loss moving average;
* :mod:`.curricula`: the predefined closed-form curricula;
* :mod:`.net`: the MentorNet network and its fitting to a curriculum;
* :mod:`.monotone`: the optional non-increasing envelope of a mentor;
* :mod:`.dd`, :mod:`.dd_data`: data-driven mentors (fitting, file format, training data).
"""
from .curricula import (NUM_EPOCHS, PREDEFINED, Curriculum, focal, fraction_to_epoch,
                        hard_example_mining, make_curriculum, mentornet_pd, progress_to_epoch,
                        self_paced, spcl_linear)
from .dd import FORMAT, dd_features, fit_data_driven, load_mentor, roc_auc, save_mentor
from .dd_data import anchor_cls_losses, collect_dd_batch, corrupt_instances
from .inputs import NEG, POS, PercentileEMA, all_gather_rows, mentor_features, percentile_linear
from .monotone import MAX_GRID_POINTS, mentor_rise, monotone_envelope
from .net import (MentorNetwork, OneStepBiLSTMCell, curriculum_grid, evaluate_fit,
                  fit_to_curriculum, train_mentor)
from .weighter import CURRICULA, MentorNetWeighter

__all__ = [
    'MentorNetWeighter', 'CURRICULA', 'NUM_EPOCHS', 'PREDEFINED', 'Curriculum',
    'progress_to_epoch', 'fraction_to_epoch', 'self_paced', 'hard_example_mining', 'focal',
    'spcl_linear', 'mentornet_pd', 'make_curriculum', 'FORMAT', 'roc_auc', 'dd_features',
    'fit_data_driven', 'save_mentor', 'load_mentor', 'corrupt_instances', 'anchor_cls_losses',
    'collect_dd_batch', 'NEG', 'POS', 'percentile_linear', 'all_gather_rows', 'PercentileEMA',
    'mentor_features', 'monotone_envelope', 'mentor_rise', 'MAX_GRID_POINTS',
    'OneStepBiLSTMCell', 'MentorNetwork', 'curriculum_grid', 'train_mentor', 'evaluate_fit',
    'fit_to_curriculum'
]
