r"""How a Meta-Weight-Net run's VNet moved: from the checkpoints of a work directory (each holds the
VNet and its optimizer under ``checkpoint['meta_reweight']``) and the run's logged scalars.

Per checkpoint: the weighting function :math:`\mathcal V(\ell; \phi)` on a grid of losses, the
parameter norm :math:`|\phi|`, the optimizer's weight-decay term :math:`\lambda |\phi|` and, for
Adam, the norm of its first moment :math:`|m|`. With Adam's coupled weight decay the gradient it
normalises is :math:`g + \lambda \phi`: where the hypergradient :math:`|g|` (logged as
``meta_hypergrad_log10``) falls below :math:`\lambda |\phi|`, :math:`m` follows the decay term,
each step shrinks :math:`\phi` by about the learning rate, and the VNet flattens towards
:math:`\sigma(0) = 0.5` (uniform weights after normalisation) whatever the meta signal says.
"""
import glob
import json
import math
import os
import re
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.runner import CheckpointLoader

from mmreweight.engine.meta_hook import CHECKPOINT_KEY
from mmreweight.weighting.mwnet import VNet

#: the hook's checkpoint entry of a Meta-Weight-Net run
MWNET_TYPE = 'MetaWeightNetWeighter'
_ITER = re.compile(r'iter_(\d+)\.pth$')


def checkpoint_iters(work_dir: str) -> List[str]:
    """The regular checkpoints ``iter_N.pth`` of ``work_dir``, by iteration."""
    found = [p for p in glob.glob(os.path.join(work_dir, 'iter_*.pth')) if _ITER.search(p)]
    return sorted(found, key=lambda p: int(_ITER.search(p).group(1)))


def load_vnet_state(path: str) -> Dict[str, Any]:
    """The VNet state dict and optimizer state dict saved in a checkpoint."""
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    saved = ckpt.get(CHECKPOINT_KEY)
    if saved is None or saved.get('type') != MWNET_TYPE:
        found = 'no meta-reweighting state' if saved is None else f"a {saved.get('type')} state"
        raise ValueError(f'{path} holds {found}, not a {MWNET_TYPE} (MW-Net) one')
    return dict(saved['state'], iter=ckpt.get('meta', {}).get('iter'))


def vnet_point(state: Dict[str, Any], losses: torch.Tensor) -> Dict[str, Any]:
    """One checkpoint's weighting function on ``losses`` and its optimizer-state norms."""
    vnet_sd = state['vnet']
    vnet = VNet(hidden=vnet_sd['fc1.weight'].shape[0])
    vnet.load_state_dict(vnet_sd)
    with torch.no_grad():
        curve = vnet(losses.float())
    params = [p.detach().double() for p in vnet.parameters()]
    phi = math.sqrt(sum(float((p * p).sum()) for p in params))
    opt = state['optim_wrapper']
    groups = opt.get('param_groups', [])
    decay = float(groups[0].get('weight_decay', 0.0)) if groups else 0.0
    moments = [s['exp_avg'].double() for s in opt.get('state', {}).values() if 'exp_avg' in s]
    m = math.sqrt(sum(float((x * x).sum()) for x in moments)) if moments else None
    return dict(iter=state.get('iter'), curve=curve.tolist(), phi_norm=phi,
                weight_decay=decay, decay_term=decay * phi, adam_m_norm=m)


def logged_scalar(work_dir: str, key: str = 'meta_hypergrad_log10') -> List[List[float]]:
    """``[iter, value]`` of a scalar the runner logged (mmengine's ``vis_data/scalars.json`` in
    the work directory's newest timestamped folder that has it)."""
    for path in sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')),
                       reverse=True):
        rows = []
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                if key in entry and 'iter' in entry:
                    rows.append([int(entry['iter']), float(entry[key])])
        if rows:
            return rows
    return []


def trajectory(work_dir: str, losses: Sequence[float]) -> Dict[str, Any]:
    """Every checkpoint's :func:`vnet_point` and the logged hypergradient norm of the run."""
    paths = checkpoint_iters(work_dir)
    if not paths:
        raise FileNotFoundError(f'no iter_*.pth checkpoint in {work_dir}')
    grid = torch.as_tensor(list(losses), dtype=torch.float32)
    points = []
    for path in paths:
        point = vnet_point(load_vnet_state(path), grid)
        if point['iter'] is None:
            point['iter'] = int(_ITER.search(path).group(1))
        points.append(point)
    return dict(losses=grid.tolist(), points=points,
                hypergrad_log10=logged_scalar(work_dir))


def plot(traj: Dict[str, Any], path: str, title: str = '',
         curve_iters: Optional[Sequence[int]] = None) -> str:
    """Two panels: the VNet's weight against loss at some checkpoints (all, or ``curve_iters``),
    and over iterations log10 of the weight-decay term, Adam's first moment and the logged
    hypergradient norm."""
    from mmreweight.analysis import plots
    fig, (left, right) = plots.subplots(2, ncols=2)
    points = traj['points']
    if curve_iters is not None:
        points = [p for p in points if p['iter'] in set(curve_iters)]
    cmap = plots.plt.get_cmap('viridis')
    for i, p in enumerate(points):
        left.plot(traj['losses'], p['curve'], color=cmap(i / max(len(points) - 1, 1)),
                  label=f"iter {p['iter']}")
    left.set_xlabel('per-anchor loss')
    left.set_ylabel('VNet(loss)')
    left.set_ylim(0, 1)
    left.legend(fontsize=6)
    left.set_title('weighting function', fontsize=9)
    its = [p['iter'] for p in traj['points']]
    if any(p['decay_term'] > 0 for p in traj['points']):
        right.plot(its, [math.log10(max(p['decay_term'], 1e-30)) for p in traj['points']],
                   label='weight decay x |phi|')
    if all(p['adam_m_norm'] for p in traj['points']):
        right.plot(its, [math.log10(p['adam_m_norm']) for p in traj['points']], '--',
                   label="Adam's |m|")
    if traj['hypergrad_log10']:
        x, y = zip(*traj['hypergrad_log10'])
        right.plot(x, y, ':', label='hypergradient |g| (logged)')
    right.plot(its, [math.log10(p['phi_norm']) for p in traj['points']], label='|phi|')
    right.set_xlabel('iteration')
    right.set_ylabel('log10 norm')
    right.legend(fontsize=6)
    right.set_title(title, fontsize=9)
    return plots.save(fig, path)


__all__ = ['MWNET_TYPE', 'checkpoint_iters', 'load_vnet_state', 'vnet_point', 'logged_scalar',
           'trajectory', 'plot']
