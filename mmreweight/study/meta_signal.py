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

The inner step size is the config's base learning rate (the detector's current one in training):
one factor for every coefficient and hypergradient, so none of these statistics depends on it.
Nothing is kept: the VNet and its optimizer are restored, the detector is not updated.
"""
import copy
import itertools
import math
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from scipy.stats import spearmanr

from mmreweight.models.reweight_retina_head import CLEAN_POSITIVE, NOISY_POSITIVE
from mmreweight.weighting.mentornet_dd import roc_auc
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


def meta_signal(diag, batches: int) -> Dict[str, Any]:
    """The signal of ``batches`` meta steps at the checkpoint an
    :class:`~mmreweight.study.diagnostics.AnchorDiagnostics` loaded (see the module docstring)."""
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
    rows, grads = [], []
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
            rows.append(_batch_row(weighter.last_coef.double().cpu().numpy(),
                                   seen['loss'][weighted].double().cpu().numpy(),
                                   seen['gt_noisy'][weighted].cpu().numpy()))
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
    out['per_batch'] = rows
    out['hypergrads'] = stacked.tolist()
    return out


__all__ = ['meta_signal']
