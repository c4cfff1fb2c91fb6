"""MentorNet-DD: a mentor learned from clean data, and its file format.

Training data (built by :mod:`.dd_data` from a detector and the clean split): for each
anchor of a clean image whose ground-truth labels were corrupted on purpose, the MentorNet inputs
``[ℓ, ℓ − P_p(group), y, e]`` computed under the *corrupted* labels (what a trainer on noisy data
sees) and the target ``v* = 1[corrupted label = true label]``. The mentor learns to tell anchors
with a correct label from those with a wrong one, as the reference learns ``1[noisy == clean]``.

The file is ``torch.save`` of plain containers (tensors, str, int, float, lists), so it loads with
``torch.load(weights_only=True)``::

    {'format': 'mmreweight.mentornet/1', 'curriculum': str, 'net_config': dict,
     'state_dict': {name: Tensor}, 'meta': dict}
"""
import os
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor

from mmreweight.utils.loading import load_torch_file

from .curricula import NUM_EPOCHS
from .inputs import percentile_linear
from .monotone import mentor_rise
from .net import MentorNetwork, evaluate_fit, train_mentor

FORMAT = 'mmreweight.mentornet/1'


def roc_auc(scores: Tensor, targets: Tensor) -> float:
    """Area under the ROC curve, by the Mann–Whitney statistic with tied scores given mean ranks::

        AUC = (Σ_{i: t_i=1} r_i − n₁(n₁+1)/2) / (n₁·n₀)

    (r_i = 1-based rank of score i). NaN when one class is absent.
    """
    scores, targets = scores.reshape(-1).double(), targets.reshape(-1) > 0.5
    n1, n0 = int(targets.sum()), int((~targets).sum())
    if n1 == 0 or n0 == 0:
        return float('nan')
    order = scores.argsort()
    sorted_scores = scores[order]
    # 1-based ranks; a run of equal scores shares the mean rank of the run
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True,
                                                  return_counts=True)
    run_end = counts.cumsum(0).double()
    mean_rank = run_end - (counts.double() - 1) / 2
    ranks = torch.empty_like(scores)
    ranks[order] = mean_rank[inverse]
    return float((ranks[targets].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def dd_features(loss: Tensor, is_pos: Tensor, epoch: Tensor, percentile: float = 0.7) -> Tensor:
    """(M, 4) inputs ``[ℓ, ℓ − P_p(ℓ of the same group and epoch), y, e]`` for collected anchors.

    Groups are negatives / positives (as :class:`PercentileEMA` at training time); each collected
    epoch (checkpoint) has its own percentiles, as each training step has its moving average.
    """
    loss, is_pos, epoch = loss.float(), is_pos.bool(), epoch.long()
    diff = torch.empty_like(loss)
    for e in epoch.unique():
        for group in (False, True):
            mask = (epoch == e) & (is_pos == group)
            if mask.any():
                diff[mask] = loss[mask] - percentile_linear(loss[mask], percentile)
    return torch.stack([loss, diff, is_pos.float(), epoch.float()], dim=1)


def fit_data_driven(features: Tensor, targets: Tensor, net: Optional[MentorNetwork] = None,
                    steps: int = 3000, batch_size: int = 512, lr: float = 0.02,
                    holdout: float = 0.2, seed: int = 0) -> Tuple[MentorNetwork, Dict[str, float]]:
    """Train a data-driven mentor on ``features`` (M, 4) with clean-label targets (M,) ∈ {0, 1}.

    Before training, the mentor's ``input_scale`` is set to ``1/std(ℓ)`` (detection losses are far
    below the loss-unit scale the gates resolve) and every epoch is mapped to the nearest epoch
    present (:meth:`MentorNetwork.restrict_epochs`).
    A random ``holdout`` fraction is kept out; returns ``(net, metrics)`` with its ``accuracy``,
    ``mae`` and ``auc`` (and ``auc_pos``, over positives only, where the corruption lives), and
    how far the fitted v rises again with the loss beyond the training losses
    (:func:`~.monotone.mentor_rise`: ``rise_pos``, ``rise_at_loss``, ``rise_epoch``).
    """
    if features.ndim != 2 or features.shape[1] != 4 or len(features) != len(targets):
        raise ValueError(f'expected features (M, 4) and targets (M,), got '
                         f'{tuple(features.shape)} and {tuple(targets.shape)}')
    gen = torch.Generator().manual_seed(seed)
    net = net if net is not None else MentorNetwork(seed=seed)
    features, targets = features.float(), targets.float()
    perm = torch.randperm(len(features), generator=gen)
    n_train = int(round((1 - holdout) * len(features)))
    tr, ts = perm[:n_train], perm[n_train:]
    with torch.no_grad():
        std = features[tr, 0].std()
        net.input_scale.fill_(1.0 / float(std) if std > 0 else 1.0)
        net.restrict_epochs(features[:, 3].round().long().clamp(0, NUM_EPOCHS - 1))
    train_mentor(net, features[tr], targets[tr], steps, batch_size, lr, generator=gen)
    metrics = evaluate_fit(net, features[ts], targets[ts])
    with torch.no_grad():
        v = net.weights(features[ts])
    metrics['auc'] = roc_auc(v, targets[ts])
    pos = features[ts, 2] > 0.5
    metrics['auc_pos'] = roc_auc(v[pos], targets[ts][pos])
    metrics.update(mentor_rise(net.weights, features))
    return net, metrics


def save_mentor(path: str, net: MentorNetwork, curriculum: str = 'dd',
                meta: Optional[Dict[str, Any]] = None) -> None:
    """Write ``net`` to ``path`` in the format of the module docstring (``meta``: plain values)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(dict(format=FORMAT, curriculum=curriculum, net_config=dict(net.config),
                    state_dict={k: v.detach().cpu() for k, v in net.state_dict().items()},
                    meta=dict(meta or {})), path)


def load_mentor(path: str) -> Tuple[MentorNetwork, str, Dict[str, Any]]:
    """Read a mentor written by :func:`save_mentor`: ``(net, curriculum, meta)``.

    Raises:
        FileNotFoundError: no file at ``path`` (with a hint on how to make one).
        ValueError: the file is not a mentor file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'MentorNet checkpoint {path!r} does not exist. Train a data-driven mentor with '
            f'`python tools/train_mentornet_dd.py <detector config> <detector checkpoint> '
            f'--out {path}`.')
    blob = load_torch_file(path, 'MentorNet file', 'use a file from tools/train_mentornet_dd.py')
    if not isinstance(blob, dict) or blob.get('format') != FORMAT:
        raise ValueError(f'{path!r} is not a MentorNet file (expected format {FORMAT!r}).')
    net = MentorNetwork(**blob['net_config'])
    net.load_state_dict(blob['state_dict'])
    net.eval()
    return net, blob['curriculum'], blob['meta']


__all__ = ['FORMAT', 'roc_auc', 'dd_features', 'fit_data_driven', 'save_mentor', 'load_mentor']
