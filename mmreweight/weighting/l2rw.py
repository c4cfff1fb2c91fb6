r"""Learning to reweight examples (Ren et al., ICML 2018), per anchor, without a look-ahead copy.

L2RW perturbs the training loss by per-anchor weights :math:`\epsilon_a` and takes one SGD step,
:math:`\theta'(\epsilon) = \theta - \alpha \nabla_\theta \sum_a \epsilon_a \ell_a(\theta)`,
then sets

.. math:: \tilde w_a = \max\Big(0,\; -\frac{\partial L_\mathrm{clean}(\theta'(\epsilon))}
          {\partial \epsilon_a}\Big|_{\epsilon=0}\Big)
          = \max\big(0,\; \alpha\, \langle \nabla_\theta \ell_a(\theta),\, g_c \rangle\big),
          \qquad g_c = \nabla_\theta L_\mathrm{clean}(\theta),

because :math:`\theta'(0) = \theta`. So no look-ahead model is built: one clean gradient
:math:`g_c` at :math:`\theta` and one directional derivative per anchor
(:mod:`mmreweight.weighting.alignment`). With per-parameter learning rates :math:`\alpha_p` the
inner product is :math:`\langle \nabla \ell_a, \alpha \odot g_c \rangle`; with one learning rate
:math:`\alpha` cancels in the normalisation.

Normalisation: mean one over valid anchors, :math:`w_a = \tilde w_a N_\mathrm{valid} / \sum_b
\tilde w_b` (all zero when every alignment is :math:`\le 0`, as the reference's
``sum + (sum == 0)``). The paper's :math:`\sum w = 1` would shrink RetinaNet's loss by the number of
anchors (~1e4-1e5); mean one keeps the head's ``avg_factor`` normalisation meaningful and uniform
weights equal to the unweighted loss.

DDP: :math:`g_c` is averaged over ranks (the clean loss is the mean of the ranks' clean losses, as
the training loss is) and :math:`N_\mathrm{valid}`, :math:`\sum \tilde w` are summed, so every rank
produces the weights one process would for the concatenated batches.

Early in training nearly every background anchor can have a negative alignment (the clean loss is
dominated by the foreground), so mean one over all anchors puts the whole weight on the ~1% of
positive anchors and multiplies the classification loss by ~100. ``normalise='pos_neg'`` keeps
focal loss's foreground/background balance and reweights within each group; per-anchor alignments
are heavy-tailed (an anchor's weight grows with its own gradient norm), so the background group
can still end up on a handful of anchors. ``normalise='foreground'`` reweights only the foreground
anchors (mean one over them) and leaves every background anchor at weight 1: label noise and
class imbalance live in the annotations, i.e. in the foreground, and the background term stays
exactly focal loss's. Since the foreground weights sum to the number of foreground anchors, the
weighted foreground loss is at most the largest single foreground loss times that number, so it
cannot blow up the way a mean over all anchors can.

Between meta iterations (``interval > 1``) the last :math:`g_c` is reused.

``clean_grad_momentum`` m > 0 (an extension, not in the paper) replaces :math:`g_c` by its moving
average over meta steps, :math:`\bar g_t = m\,\bar g_{t-1} + (1 - m)\,g_{c,t}` (:math:`\bar g_1 =
g_{c,1}`), so the direction reflects about :math:`(1+m)/(1-m)` clean batches at the cost of one.
Why: on 40%-noise detection the weights of one small clean batch were a coin flip on which batch was
drawn (``tools/diagnose.py --clean-batches``), while averaging over clean batches separated clean
from noisy annotations at a fixed checkpoint. In training it did not help (the study's
``l2rw_head_ema`` variant; findings in ``docs/study/note.md``), likely because a stable direction
clips the same anchors step after step; hence the default 0. The average is taken at slightly older
:math:`\theta`; it is part of the weighter's checkpointed state.
"""
import torch

from mmreweight.registry import MODELS
from .base import AnchorLossContext, annotation_index, mean_one_over_ranks
from .meta_base import MetaAnchorWeighter, all_reduce_mean_, cpu_flushed_denormals, scatter_valid

NORMALISATIONS = ('mean_one', 'pos_neg', 'foreground')
UNITS = ('anchor', 'annotation')


@MODELS.register_module()
class L2RWWeighter(MetaAnchorWeighter):
    r"""Per-anchor L2RW weights; see the module docstring for the math.

    Args:
        theta: ``'cls_out'`` (default), ``'head'`` or ``'all'``: the parameters of the inner step.
        normalise: ``'mean_one'`` (default, over all valid anchors), ``'pos_neg'`` (mean one over
            the valid foreground anchors and, separately, over the background ones; a group whose
            alignments are all <= 0 gets zero weights) or ``'foreground'`` (foreground anchors as
            in ``'pos_neg'``, background anchors weight 1).
        per: ``'anchor'`` (default: one :math:`\epsilon` per anchor) or ``'annotation'`` (one
            per annotation, shared by the anchors assigned to it: its weight is
            :math:`\max(0, \sum_{a \in g} \langle \nabla \ell_a, g_c \rangle)`, the unit that
            carries a label, and the paper's "example"); needs ``normalise='foreground'``.
        clean_grad_momentum: m in [0, 1): moving average of the clean gradient over meta steps
            (module docstring); 0 (default): the paper's current clean gradient only.
        clean_target_cache_mb: see :class:`~mmreweight.weighting.meta_base.MetaAnchorWeighter`.
    """

    def __init__(self, theta: str = 'cls_out', normalise: str = 'mean_one',
                 per: str = 'anchor', clean_grad_momentum: float = 0.0,
                 clean_target_cache_mb: float = 256) -> None:
        super().__init__(theta, clean_target_cache_mb)
        if not 0 <= clean_grad_momentum < 1:
            raise ValueError(f'clean_grad_momentum must be in [0, 1), got {clean_grad_momentum!r}.')
        if normalise not in NORMALISATIONS:
            raise ValueError(f'normalise must be one of {NORMALISATIONS}, got {normalise!r}.')
        if per not in UNITS:
            raise ValueError(f'per must be one of {UNITS}, got {per!r}.')
        if per == 'annotation' and normalise != 'foreground':
            raise ValueError("per='annotation' weights annotations, i.e. foreground anchors: it "
                             "needs normalise='foreground'.")
        self.normalise = normalise
        self.per = per
        self.clean_grad_momentum = float(clean_grad_momentum)
        self._direction = None  # alpha * g_c, one tensor per parameter of theta
        self._clean_grad_avg = None  # moving average of g_c (clean_grad_momentum > 0)

    @cpu_flushed_denormals
    def prepare_clean(self, inputs, data_samples) -> None:
        """Compute :math:`\\alpha \\odot g_c` on a (preprocessed) clean batch."""
        view = self._view()
        view.prepare_clean(inputs, data_samples)
        # one chunk: this runs before the training forward, far from the step's memory peak
        clean_loss, grads = view.clean_loss_and_grad(view.leaves(), chunks=1)
        all_reduce_mean_(grads)
        if self.clean_grad_momentum > 0:
            grads = self._update_clean_grad_avg(grads)
        self._direction = [lr * g for lr, g in zip(self.lrs(), grads)]
        view.clean = None  # L2RW needs nothing else from the clean batch
        self._scalars = dict(meta_clean_loss=float(clean_loss))

    @cpu_flushed_denormals
    def forward(self, ctx: AnchorLossContext) -> torch.Tensor:
        if self._direction is None:
            raise RuntimeError('L2RWWeighter has no clean gradient yet: prepare_clean() must run '
                               'before the first weighted loss (MetaReweightHook does this).')
        valid = ctx.valid
        if self.normalise == 'foreground':
            return self._foreground_weights(ctx, valid)
        with torch.no_grad():
            align = self._view().alignment(ctx, self._direction)
        raw = align[valid].clamp(min=0)
        positive = ctx.labels[valid] < ctx.num_classes
        if self.normalise == 'mean_one':
            groups = [torch.ones_like(raw, dtype=torch.bool)]
        else:  # 'pos_neg': foreground and background anchors separately
            groups = [positive, ~positive]
        weights = raw
        for group in groups:  # disjoint: each pass rescales its own anchors only
            weights = mean_one_over_ranks(weights, group)
        self._log_positive_fraction(raw)
        return scatter_valid(weights, valid).detach()

    def _update_clean_grad_avg(self, grads):
        avg, m = self._clean_grad_avg, self.clean_grad_momentum
        if avg is None:
            avg = [g.detach().clone() for g in grads]
        else:
            if [a.shape for a in avg] != [g.shape for g in grads]:
                raise RuntimeError('L2RWWeighter: the stored clean-gradient average has shapes '
                                   f'{[tuple(a.shape) for a in avg]}, theta\'s gradients '
                                   f'{[tuple(g.shape) for g in grads]} (another model or theta?)')
            avg = [a.to(g).mul_(m).add_(g.detach(), alpha=1 - m) for a, g in zip(avg, grads)]
        self._clean_grad_avg = avg
        return avg

    # -- checkpointing (the hook stores these under checkpoint['meta_reweight'])
    def meta_state_dict(self) -> dict:
        avg = self._clean_grad_avg
        return dict(clean_grad_avg=None if avg is None else [a.detach().cpu() for a in avg])

    def load_meta_state_dict(self, state: dict) -> None:
        # checkpoints written before clean_grad_momentum existed hold no L2RW state
        avg = state.get('clean_grad_avg')
        # moved to theta's device and shape-checked at the next meta step
        self._clean_grad_avg = None if avg is None else [a.clone() for a in avg]

    def _foreground_weights(self, ctx: AnchorLossContext, valid: torch.Tensor) -> torch.Tensor:
        # Background anchors keep weight 1, so only the foreground's alignments are taken.
        rows = (valid & (ctx.labels < ctx.num_classes)).nonzero().squeeze(1)
        with torch.no_grad():
            align = self._view().alignment(ctx, self._direction, rows)
            if self.per == 'annotation':
                # one epsilon per annotation: its derivative sums its anchors' alignments
                index = annotation_index(ctx)[rows]
                align = align.new_zeros(int(index.max()) + 1 if index.numel() else 0) \
                    .index_add_(0, index, align)[index]
            raw = align.clamp(min=0)
        weights = valid.to(raw.dtype)
        weights[rows] = mean_one_over_ranks(raw)
        self._log_positive_fraction(raw)
        return weights.detach()

    def _log_positive_fraction(self, raw: torch.Tensor) -> None:
        self._scalars.update(meta_align_pos_frac=float((raw > 0).float().mean())
                             if raw.numel() else float('nan'))

    def extra_repr(self) -> str:
        extra = (f', clean_grad_momentum={self.clean_grad_momentum}'
                 if self.clean_grad_momentum else '')
        return f'theta={self.theta!r}, normalise={self.normalise!r}, per={self.per!r}{extra}'


__all__ = ['L2RWWeighter']
