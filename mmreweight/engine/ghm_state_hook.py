"""Shows what GHM's warm-up and μ calibration do: the training log and the visualizer get their
values, and the run's work dir the gradient-density histograms of the first and last iteration."""
import json
import os.path as osp
from typing import Dict, List, Optional

import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmreweight.losses.ghm import GHMR, _GHMLoss
from mmreweight.registry import HOOKS

DENSITY_FILE = 'ghm_density.json'


def ghm_losses(model) -> Dict[str, _GHMLoss]:
    """The model's GHM losses by module name (``bbox_head.loss_cls``, ...)."""
    model = model.module if is_model_wrapper(model) else model
    return {name: module for name, module in model.named_modules()
            if isinstance(module, _GHMLoss)}


def density_rows(loss: _GHMLoss) -> Optional[List[List[float]]]:
    """Each FPN level's moving-average bin counts as fractions of its total (None without
    momentum, which keeps no histogram between calls)."""
    if loss.momentum == 0:
        return None
    acc = loss.acc_sum.detach().cpu().double().numpy()
    totals = acc.sum(axis=1, keepdims=True)
    return np.divide(acc, totals, out=np.zeros_like(acc), where=totals > 0).tolist()


@HOOKS.register_module()
class GHMStateHook(Hook):
    """Logs each GHM loss's warm-up share (``ghm/<loss>_share``: 0 = its plain counterpart,
    1 = the harmonized loss) and GHM-R's μ (``ghm/<loss>_mu``) every iteration through the
    message hub, so they reach the training log (averaged over its window, as every scalar)
    and every visualizer backend.

    After the first training iteration and after training it stores the moving-average
    gradient-density histograms (per FPN level) in ``<work_dir>/ghm_density.json``, and, with
    matplotlib installed, draws them into ``ghm_density.png`` and the visualizer.

    Config: ``custom_hooks = [dict(type='mmreweight.GHMStateHook')]``.
    """

    priority = 'NORMAL'  # before the LoggerHook (BELOW_NORMAL) reads this iteration's scalars

    def __init__(self) -> None:
        self.snapshots: Dict[str, Dict[str, list]] = {}

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        losses = ghm_losses(runner.model)
        if not self.snapshots:  # the first iteration of this process (of a resumed run too)
            self._snapshot(losses, 'first iteration', runner.iter + 1)
        for name, loss in losses.items():
            short = name.rsplit('.', 1)[-1]
            runner.message_hub.update_scalar(f'train/ghm/{short}_share', loss.last_share)
            if isinstance(loss, GHMR):
                mu = loss.current_mu()
                if mu is not None:
                    runner.message_hub.update_scalar(f'train/ghm/{short}_mu', mu)

    def after_train(self, runner) -> None:
        losses = ghm_losses(runner.model)
        if not losses:
            return
        self._snapshot(losses, 'last iteration', runner.iter)  # iterations done
        with open(osp.join(runner.work_dir, DENSITY_FILE), 'w') as f:
            json.dump(self.snapshots, f, indent=1)
        self._draw(runner, losses)

    def _snapshot(self, losses: Dict[str, _GHMLoss], when: str, iteration: int) -> None:
        for name, loss in losses.items():
            rows = density_rows(loss)
            if rows is None:
                continue
            entry = self.snapshots.setdefault(name, dict(edges=loss.edges.tolist()))
            entry[f'{when} (iteration {iteration})'] = rows

    def _draw(self, runner, losses: Dict[str, _GHMLoss]) -> None:
        try:
            from mmreweight.analysis import plots
        except ImportError:  # matplotlib is an optional extra; the JSON holds the numbers
            runner.logger.info(f'GHMStateHook: {DENSITY_FILE} written; install matplotlib '
                               '(pip install mmreweight[plots]) for its figure')
            return
        image = plots.ghm_density_figure(self.snapshots, osp.join(runner.work_dir,
                                                                   'ghm_density.png'))
        runner.visualizer.add_image('ghm_density', image, step=runner.iter)
