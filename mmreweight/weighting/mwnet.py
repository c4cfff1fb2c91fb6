r"""Meta-Weight-Net (Shu et al., NeurIPS 2019) on per-anchor classification losses.

Weights come from a small MLP of the (detached) per-anchor loss,
:math:`\tilde w_a = \mathcal V(\ell_a; \phi)` (``VNet``: Linear 1-100, ReLU, Linear 100-1, sigmoid),
normalised to mean one over valid anchors, :math:`w_a = \tilde w_a N_\mathrm{valid} / \sum_b
\tilde w_b` (``normalise='mean_one'``, default: uniform weights give the unweighted loss, as in the
WRN script's :math:`w / \sum w` up to the constant :math:`N`), or used as they are
(``normalise='none'``, the "stable" ResNet-32 script).

Each meta step unrolls one plain SGD step of the reweighted classification loss

.. math:: \theta'(\phi) = \theta - \alpha \nabla_\theta
          \frac{\sum_a w_a(\phi)\, \ell_a(\theta)}{\mathrm{avg\_factor}}

(:math:`\alpha` the current learning rate of :math:`\theta` in the model's optimizer, per parameter;
momentum and weight decay are not unrolled) and descends the clean loss at the look-ahead point,

.. math:: \frac{\partial L_\mathrm{clean}(\theta')}{\partial \phi}
          = -\sum_a \frac{\langle \nabla_\theta L_\mathrm{clean}(\theta'),\,
          \alpha \odot \nabla_\theta \ell_a(\theta) \rangle}{\mathrm{avg\_factor}}\,
          \frac{\partial w_a}{\partial \phi}.

The inner products are the alignments of :mod:`mmreweight.weighting.alignment` against
:math:`g' = \nabla_\theta L_\mathrm{clean}(\theta')`, and the sum over anchors is a VJP through the
VNet and the normalisation: no double backward through the network, and the loss need not be twice
differentiable. Cost of a meta step with ``theta='cls_out'``: one conv-weight gradient over the
training features (the look-ahead step, from the :math:`\partial \ell / \partial z` the alignments
need anyway), one conv + loss backward + conv-weight gradient over the clean batch's stored
classification features (:math:`g'`), one conv over the training features (alignments), and the
VNet evaluated in :math:`O(N \log h)` (:meth:`VNet.forward_sorted`, exact).
Then the VNet optimizer steps and the training loss uses :math:`w(\phi_\mathrm{new})` (detached).

DDP: the look-ahead gradient and :math:`g'` are averaged over ranks (the losses are means of the
ranks' losses, as DDP's gradient is), the normaliser's count and sum are summed, and the VJP is
written so that summing the ranks' VNet gradients gives exactly the single-process hypergradient
of the concatenated batch; every rank then takes the same VNet step.
"""
import math
from typing import Dict, Optional

import torch
from mmengine.optim import build_optim_wrapper
from torch import Tensor, nn

from mmreweight.losses.utils import AVG_FACTOR_EPS
from mmreweight.registry import MODELS
from .base import AnchorLossContext, mean_one_over_ranks
from .meta_base import (MetaAnchorWeighter, all_reduce_mean_, all_reduce_sum_,
                        cpu_flushed_denormals, global_count_and_sum, scatter_valid,
                        world_size)

NORMALISATIONS = ('mean_one', 'none', 'foreground')


class VNet(nn.Module):
    """Meta-Weight-Net's weighting function: Linear(1, h) - ReLU - Linear(h, 1) - sigmoid."""

    def __init__(self, hidden: int = 100) -> None:
        super().__init__()
        self.fc1 = nn.Linear(1, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, loss: Tensor) -> Tensor:
        """(N,) losses -> (N,) weights in (0, 1)."""
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(loss.unsqueeze(1))))).squeeze(1)

    def forward_sorted(self, x: Tensor) -> Tensor:
        r"""Same values as :meth:`forward` (and the same gradients w.r.t. the parameters, almost
        everywhere) in :math:`O(N \log h)` time and :math:`O(N + h)` memory instead of
        :math:`O(N h)`.

        With a scalar input the pre-sigmoid output is piecewise linear,
        :math:`o(x) = b_2 + \sum_j v_j\,\mathrm{relu}(a_j x + c_j) = b_2 + S_1(x)\,x + S_0(x)`,
        where :math:`S_1 = \sum_{j \in J(x)} v_j a_j`, :math:`S_0 = \sum_{j \in J(x)} v_j c_j` over
        the active units :math:`J(x) = \{j: a_j x + c_j > 0\}`: units with :math:`a_j > 0` are
        active above their kink :math:`t_j = -c_j / a_j`, units with :math:`a_j < 0` below it, and
        units with :math:`a_j = 0` when :math:`c_j > 0`. Sorting the kinks once, :math:`S_1, S_0`
        are prefix sums looked up with ``searchsorted``; autograd differentiates the prefix sums.
        """
        a, c = self.fc1.weight[:, 0], self.fc1.bias
        v, b2 = self.fc2.weight[0], self.fc2.bias[0]
        va, vc = v * a, v * c
        # units with a_j = 0 are active everywhere or nowhere; their v_j a_j is 0 but carries the
        # gradient v_j x w.r.t. a_j
        flat = ((a == 0) & (c > 0)).to(x.dtype)
        s1, s0 = (va * flat).sum(), (vc * flat).sum()
        sloped = a != 0
        if bool(sloped.any()):
            with torch.no_grad():
                kinks = -c[sloped] / a[sloped]
                order = torch.argsort(kinks)
                t = kinks[order].contiguous()
            # One search for both kinds, k = #{j: t_j < x}: units with a_j > 0 are active iff
            # t_j < x (among the first k), units with a_j < 0 iff t_j > x (the others; at
            # t_j = x their output a_j x + c_j is 0 either way). So
            # S = sum_{a_j < 0} s_j + sum_{first k} (+s_j if a_j > 0 else -s_j).
            up = (a[sloped] > 0)[order]
            sign = torch.where(up, 1.0, -1.0).to(x.dtype)
            va_s, vc_s = va[sloped][order], vc[sloped][order]
            zero = x.new_zeros(1)
            p1 = torch.cat([zero, torch.cumsum(va_s * sign, 0)])
            p0 = torch.cat([zero, torch.cumsum(vc_s * sign, 0)])
            k = torch.searchsorted(t, x.detach().contiguous())
            s1 = s1 + (va_s * ~up).sum() + p1[k]
            s0 = s0 + (vc_s * ~up).sum() + p0[k]
        return torch.sigmoid(b2 + s1 * x + s0)


@MODELS.register_module()
class MetaWeightNetWeighter(MetaAnchorWeighter):
    """Per-anchor Meta-Weight-Net weights; see the module docstring for the math.

    Args:
        theta: ``'cls_out'`` (default), ``'head'`` or ``'all'``: the parameters of the look-ahead.
        hidden: VNet width (100 in the paper).
        normalise: ``'mean_one'`` (default), ``'none'`` or ``'foreground'`` (the VNet weights the
            valid foreground anchors only, mean one over them; background anchors keep weight 1,
            as ``L2RWWeighter(normalise='foreground')``: with a weight for every anchor the VNet
            learns to up-weight high losses, i.e. the foreground, noisy annotations included).
        optim_wrapper: mmengine optim-wrapper config of the VNet. Default: the WRN-28-10 script's
            SGD lr 1e-3, momentum 0.9, Nesterov, weight decay 5e-4. (The "stable" script uses
            ``dict(type='Adam', lr=1e-3, weight_decay=1e-4)``.)
        clean_target_cache_mb: see :class:`~mmreweight.weighting.meta_base.MetaAnchorWeighter`.
    """
    weights_from_clean_batch = False  # the clean batch trains the VNet; weights are VNet(loss)

    def __init__(self, theta: str = 'cls_out', hidden: int = 100, normalise: str = 'mean_one',
                 optim_wrapper: Optional[dict] = None, clean_target_cache_mb: float = 256) -> None:
        super().__init__(theta, clean_target_cache_mb)
        if normalise not in NORMALISATIONS:
            raise ValueError(f'normalise must be one of {NORMALISATIONS}, got {normalise!r}.')
        self.normalise = normalise
        self.vnet = VNet(hidden)
        optim_wrapper = optim_wrapper or dict(
            type='OptimWrapper',
            optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, nesterov=True, weight_decay=5e-4))
        if 'optimizer' not in optim_wrapper:  # a bare optimizer config
            optim_wrapper = dict(type='OptimWrapper', optimizer=optim_wrapper)
        # A plain attribute (not a submodule); the hook checkpoints it with the VNet.
        self.optim_wrapper = build_optim_wrapper(self.vnet, optim_wrapper)
        self._clean_ready = False
        # the last meta step's hypergradient (per VNet parameter) and per-anchor coefficients
        # c_a = dL_clean(theta')/dw_a of the VNet-weighted anchors, for diagnostics
        self.last_hypergrad = None
        self.last_coef = None

    # -- checkpointing (the hook stores these under checkpoint['meta_reweight'])
    def meta_state_dict(self) -> Dict:
        return dict(vnet=self.vnet.state_dict(), optim_wrapper=self.optim_wrapper.state_dict())

    def load_meta_state_dict(self, state: Dict) -> None:
        self.vnet.load_state_dict(state['vnet'])
        self.optim_wrapper.load_state_dict(state['optim_wrapper'])

    # -- weights
    def _vnet(self, losses: Tensor) -> Tensor:
        # The exact O(N log h) evaluation for the stock architecture; any other VNet as it is.
        if type(self.vnet) is VNet:
            return self.vnet.forward_sorted(losses)
        return self.vnet(losses)

    def _weighted(self, ctx: AnchorLossContext) -> Tensor:
        """(N,) bool: the anchors whose weight the VNet gives."""
        if self.normalise == 'foreground':
            return ctx.valid & (ctx.labels < ctx.num_classes)
        return ctx.valid

    def _full(self, weights: Tensor, ctx: AnchorLossContext, weighted: Tensor) -> Tensor:
        """(N,) weights of every anchor from those of the ``weighted`` ones."""
        if self.normalise != 'foreground':
            return scatter_valid(weights, weighted)
        full = ctx.valid.to(weights.dtype)  # background anchors: 1
        full[weighted] = weights
        return full

    def _normalised(self, raw: Tensor) -> Tensor:
        if self.normalise == 'none':
            return raw
        return mean_one_over_ranks(raw)

    @cpu_flushed_denormals
    def prepare_clean(self, inputs, data_samples) -> None:
        """Cache the clean batch's features below theta; the meta step runs in the next loss."""
        self._view().prepare_clean(inputs, data_samples)
        self._clean_ready = True

    @cpu_flushed_denormals
    def forward(self, ctx: AnchorLossContext) -> Tensor:
        weighted = self._weighted(ctx)
        losses = ctx.loss.detach()[weighted].to(self.vnet.fc1.weight.dtype)
        if self._clean_ready:
            try:
                self._meta_step(ctx, losses)
            finally:
                self._clean_ready = False
                self._view().clean = None
        with torch.no_grad():
            weights = self._normalised(self._vnet(losses))
        return self._full(weights, ctx, weighted).to(ctx.loss.dtype)

    def _meta_step(self, ctx: AnchorLossContext, losses: Tensor) -> None:
        view, weighted = self._view(), self._weighted(ctx)
        n_valid = int(weighted.sum())
        raw = self._vnet(losses)  # depends on phi
        weights = self._normalised(raw)

        # Look-ahead theta' = theta - alpha * grad_theta sum_a w_a l_a / avg_factor.
        lrs = self.lrs()
        step = view.train_grad(ctx, self._full(weights.detach(), ctx, weighted).to(ctx.loss.dtype))
        all_reduce_mean_(step)
        theta_new = [(p.detach() - lr * g).requires_grad_()
                     for p, lr, g in zip(view.params, lrs, step)]
        clean_loss, grads = view.clean_loss_and_grad(theta_new)
        all_reduce_mean_(grads)

        # c_a = dL_clean(theta')/dw_a = -<g', alpha * grad l_a> / avg_factor (/ world size: DDP
        # averages the ranks' losses).
        direction = [lr * g for lr, g in zip(lrs, grads)]
        with torch.no_grad():
            if self.normalise == 'foreground':  # the few foreground anchors' alignments only
                align = view.alignment(ctx, direction, weighted.nonzero().squeeze(1))
            else:
                align = view.alignment(ctx, direction)[weighted]
        coef = (-align / ((ctx.avg_factor + AVG_FACTOR_EPS) * world_size())).to(raw.dtype)

        # VJP of w(phi) with cotangent c. For mean-one, w_a = r_a N / S with S = sum_b r_b over all
        # ranks: d(sum_a c_a w_a) = N/S sum_a c_a dr_a - N C / S^2 dS, C = sum_a c_a r_a (global).
        # Each rank differentiates its own share; the sum over ranks is the exact hypergradient.
        if self.normalise == 'none':
            surrogate = (coef * raw).sum()
        else:
            count, total = global_count_and_sum(raw, n_valid)
            total = total + (total == 0).to(total.dtype)  # no weighted anchor on any rank: 0
            c_dot_r = (coef * raw.detach()).sum().reshape(1)
            all_reduce_sum_([c_dot_r])
            surrogate = count / total * ((coef * raw).sum() - c_dot_r[0] / total * raw.sum())
        params = list(self.vnet.parameters())
        hypergrad = list(torch.autograd.grad(surrogate, params))
        all_reduce_sum_(hypergrad)
        for p, g in zip(params, hypergrad):
            p.grad = g
        self.optim_wrapper.step()
        self.optim_wrapper.zero_grad()
        self.last_hypergrad = [g.detach() for g in hypergrad]
        self.last_coef = coef.detach()
        norm = float(torch.sqrt(sum((g * g).sum() for g in hypergrad)))
        # log10: the norm carries the inner lr (~1e-6 here) and mmengine logs 4 decimals
        self._scalars = dict(meta_clean_loss=float(clean_loss),
                             meta_hypergrad_log10=math.log10(norm) if norm > 0 else float('-inf'))

    def extra_repr(self) -> str:
        return f'theta={self.theta!r}, normalise={self.normalise!r}'


__all__ = ['VNet', 'MetaWeightNetWeighter']
