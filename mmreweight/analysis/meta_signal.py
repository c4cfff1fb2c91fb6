r"""What Meta-Weight-Net's meta step tells its VNet at a checkpoint, and how consistently.

For each of ``batches`` training batches, with a clean batch of its own, one meta step is taken
from the same VNet state (restored after each): the per-anchor coefficients
:math:`c_a = \partial L_\mathrm{clean}(\theta') / \partial w_a` of the VNet-weighted anchors
(:attr:`MetaWeightNetWeighter.last_coef`) and the VNet hypergradient :math:`g_k`. The VNet's
gradient is :math:`\sum_a c_a\, \partial w_a / \partial \phi` and its input is the loss alone,
so what it can learn is how :math:`c` goes with the loss:

* ``spearman_coef_loss``: per batch, the rank correlation of :math:`c_a` with :math:`\ell_a`.
  Negative: raising the weight of high losses lowers the clean loss (descent makes the VNet
  increasing); positive: it should decrease, the noise-robust shape of the paper.
* ``auc_coef_noisy``: per batch, how well :math:`c` ranks the anchors of noisy annotations above
  clean ones (0.5: blind), next to ``auc_loss_noisy``, the same for the loss itself.
* ``agreement``: :math:`|\frac1K \sum_k g_k| / \frac1K \sum_k |g_k|` over the batches: 1 when
  they all point one way, about :math:`1/\sqrt K` for random directions (``random_agreement``).
* ``mean_step``: what the VNet would learn from these batches together, whatever the per-anchor
  statistics say (:func:`mean_step_effect`): a small step against the mean hypergradient (and
  against Adam's normalised one, :math:`\bar g / \mathrm{rms}(g)` per parameter, the direction
  its updates take when the batches repeat), and how each batch's mean-one weights change:
  their rank correlation with the loss (positive: the step up-weights the high losses) and the
  mean change on noisy minus clean annotations' anchors.

The inner step size is the config's base learning rate (the detector's current one in training):
one factor for every coefficient and hypergradient, so none of these statistics depends on it.
Nothing is kept: the VNet and its optimizer are restored, the detector is not updated.
"""
import copy
import itertools
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from scipy.stats import spearmanr
from torch.func import functional_call

from mmreweight.models.reweight_retina_head import CLEAN_POSITIVE, NOISY_POSITIVE
from mmreweight.weighting.mentornet.dd import roc_auc
from mmreweight.weighting.mwnet import MetaWeightNetWeighter


def _batch_row(coef: np.ndarray, loss: np.ndarray, noisy: np.ndarray) -> Dict[str, Any]:
    if len(coef) == 0:  # no weighted anchor in the batch: nothing to correlate
        return dict(anchors=0)
    row = dict(anchors=int(len(coef)), coef_mean=float(coef.mean()),
               frac_coef_positive=float((coef > 0).mean()),
               spearman_coef_loss=float(spearmanr(coef, loss)[0]) if len(coef) > 2 else None)
    clean, noise = noisy == CLEAN_POSITIVE, noisy == NOISY_POSITIVE
    if clean.any() and noise.any():
        sel = clean | noise
        is_noisy = torch.from_numpy(noise[sel])
        row['auc_coef_noisy'] = roc_auc(torch.from_numpy(coef[sel]), is_noisy)
        row['auc_loss_noisy'] = roc_auc(torch.from_numpy(loss[sel]), is_noisy)
    return row


def _mean_of(rows: List[Dict[str, Any]], key: str, above: Optional[float] = None
             ) -> Dict[str, Any]:
    """Mean and std of a per-batch statistic, its batch count and, with ``above``, how many
    batches exceed that value (0 for a correlation, 0.5 for an AUC)."""
    values = [r[key] for r in rows if r.get(key) is not None and not math.isnan(r[key])]
    if not values:
        return {}
    out = {f'{key}_mean': float(np.mean(values)), f'{key}_std': float(np.std(values)),
           f'{key}_batches': len(values)}
    if above is not None:
        out[f'{key}_batches_above_{above:g}'] = int(sum(v > above for v in values))
    return out


def mean_step_effect(vnet: torch.nn.Module, hypergrads: torch.Tensor,
                     losses: Sequence[np.ndarray], noisy: Sequence[np.ndarray],
                     step: float = 1e-3) -> Dict[str, Dict[str, Any]]:
    r"""How one small step of the VNet against its batches' hypergradients changes their weights.

    Args:
        vnet: the VNet :math:`\phi` (not modified).
        hypergrads: ``(K, P)`` the flattened hypergradients :math:`g_k` of ``K`` batches, in
            ``vnet.parameters()`` order.
        losses: per batch, the losses of the anchors the VNet weights.
        noisy: per batch, their :data:`NOISY_POSITIVE` / :data:`CLEAN_POSITIVE` flags.
        step: length of the step (unit direction).

    Returns:
        per direction (``'mean'``: :math:`-\bar g`; ``'adam'``: :math:`-\bar g / \mathrm{rms}(g)`
        per parameter), the mean over batches of ``spearman_dw_loss`` (rank correlation of the
        change of the mean-one weights :math:`w = v(\ell) / \mathrm{mean}\, v(\ell)` with the
        loss) and ``dw_noisy_minus_clean`` (mean change on noisy minus on clean anchors, over the
        batches that have both), and ``batches_dw_loss_above_0``.
    """
    # in float64: a step of 1e-3 spread over the VNet's parameters is near float32's resolution
    params = {k: p.detach().double() for k, p in vnet.named_parameters()}
    flat = torch.cat([p.flatten() for p in params.values()])
    g = hypergrads.double()
    directions = dict(mean=-g.mean(0), adam=-g.mean(0) / g.pow(2).mean(0).sqrt().clamp_min(1e-300))
    out = {}
    for name, direction in directions.items():
        if not direction.norm() > 0:  # no hypergradient (e.g. every ReLU dead): no step to take
            out[name] = dict(spearman_dw_loss=None, batches_dw_loss_above_0=0,
                             dw_noisy_minus_clean=None)
            continue
        chunks = torch.split(flat + step * direction / direction.norm(),
                             [p.numel() for p in params.values()])
        moved = {k: c.view_as(p) for (k, p), c in zip(params.items(), chunks)}
        rho, gap = [], []
        for loss, flags in zip(losses, noisy):
            x = torch.as_tensor(loss, dtype=torch.float64, device=flat.device)
            with torch.no_grad():
                before, after = [functional_call(vnet, state, (x,)) for state in (params, moved)]
            dw = (after / after.mean() - before / before.mean()).cpu().numpy()
            if len(loss) > 2 and np.ptp(dw) > 0:
                rho.append(float(spearmanr(dw, loss)[0]))
            clean, noise = flags == CLEAN_POSITIVE, flags == NOISY_POSITIVE
            if clean.any() and noise.any():
                gap.append(float(dw[noise].mean() - dw[clean].mean()))
        out[name] = dict(spearman_dw_loss=float(np.mean(rho)) if rho else None,
                         batches_dw_loss_above_0=int(sum(r > 0 for r in rho)),
                         dw_noisy_minus_clean=float(np.mean(gap)) if gap else None)
    return out


def meta_signal(diag, batches: int) -> Dict[str, Any]:
    """The signal of ``batches`` meta steps at the checkpoint an
    :class:`~mmreweight.analysis.diagnostics.AnchorDiagnostics` loaded (see the module docstring)."""
    weighter = diag.hook.weighter if diag.hook is not None else None
    if not isinstance(weighter, MetaWeightNetWeighter):
        raise ValueError(f'the meta signal needs a MetaWeightNetWeighter config; {diag.method} '
                         'is not one')
    if batches < 2:
        raise ValueError(f'the meta signal needs >= 2 batches, got {batches}')
    saved = copy.deepcopy(weighter.meta_state_dict())
    with DefaultScope.overwrite_default_scope(diag.scope):
        clean_iter = itertools.cycle(
            Runner.build_dataloader(diag.hook.clean_dataloader_cfg, seed=diag.seed))
    rows, grads, losses, flags = [], [], [], []
    try:
        for data in itertools.islice(diag.train_loader(), batches):
            with DefaultScope.overwrite_default_scope(diag.scope):
                data = diag.model.data_preprocessor(data, True)
                clean = diag.model.data_preprocessor(next(clean_iter), True)
                weighter.prepare_clean(clean['inputs'], clean['data_samples'])
                diag.model.loss(data['inputs'], data['data_samples'])
            seen = diag.head.weighter.last  # what the head passed the weighter
            valid = seen['label_weights'] > 0
            weighted = valid & (seen['labels'] < seen['logits'].shape[1]) \
                if weighter.normalise == 'foreground' else valid
            losses.append(seen['loss'][weighted].double().cpu().numpy())
            flags.append(seen['gt_noisy'][weighted].cpu().numpy())
            rows.append(_batch_row(weighter.last_coef.double().cpu().numpy(), losses[-1],
                                   flags[-1]))
            grads.append(torch.cat([g.flatten() for g in weighter.last_hypergrad]).double())
            weighter.load_meta_state_dict(copy.deepcopy(saved))
    finally:
        weighter.load_meta_state_dict(saved)
    if len(grads) < 2:
        raise ValueError(f'the training dataloader gave {len(grads)} batch(es); the meta signal '
                         'needs >= 2')
    stacked = torch.stack(grads)
    norms = stacked.norm(dim=1)
    with torch.no_grad():
        curve = weighter.vnet(torch.linspace(0, 5, 51, dtype=weighter.vnet.fc1.weight.dtype))
    out = dict(batches=len(rows), normalise=weighter.normalise,
               agreement=float(stacked.mean(0).norm() / norms.mean()),
               random_agreement=1 / math.sqrt(len(rows)),
               hypergrad_log10_median=float(torch.log10(norms.median())),
               vnet_min=float(curve.min()), vnet_max=float(curve.max()),
               vnet_at_loss_0=float(curve[0]), vnet_at_loss_5=float(curve[-1]))
    for key, above in (('spearman_coef_loss', 0.0), ('auc_coef_noisy', 0.5),
                       ('auc_loss_noisy', 0.5), ('frac_coef_positive', None)):
        out.update(_mean_of(rows, key, above))
    out['mean_step'] = mean_step_effect(weighter.vnet, stacked, losses, flags)
    out['per_batch'] = rows
    out['hypergrads'] = stacked.tolist()
    return out


__all__ = ['meta_signal', 'mean_step_effect']
