r"""Per-anchor gradient alignments as forward-mode directional derivatives.

Both meta methods need, for a vector :math:`v` in the space of the meta parameters :math:`\theta`,

.. math:: s_a = \langle \nabla_\theta \ell_a(\theta),\, v \rangle \qquad \text{for every anchor } a.

Per-anchor gradients are never formed. Since :math:`\ell_a` depends on :math:`\theta` only through
anchor :math:`a`'s logits :math:`z_a \in \mathbb{R}^C`, the chain rule gives

.. math:: s_a = \sum_c \frac{\partial \ell_a}{\partial z_{ac}}\, \dot z_{ac},
          \qquad \dot z = J_\theta z \cdot v,

i.e. one ``autograd.grad(sum_a l_a, z)`` (first derivatives of the loss only: the loss need not be
twice differentiable, mmcv's ``once_differentiable`` CUDA focal loss is fine) times one
Jacobian-vector product of the logits:

* ``theta='cls_out'`` (default): the classification output conv :math:`z = W * f + b` is linear in
  :math:`(W, b)`, so :math:`\dot z = V_W * f + V_b` — one extra conv over the stored features.
* ``theta='head'``: :func:`torch.func.jvp` of the head's classification branch on the (detached) FPN
  features. Only the parameters the logits depend on (``cls_convs``, ``retina_cls``) are used; the
  regression branch has :math:`\nabla \ell_a = 0` there, so leaving it out changes no inner product.
* ``theta='all'``: :func:`torch.func.jvp` of the detector's forward (backbone, neck, classification
  branch) on the training images.

Every extra forward runs on clones of the module buffers (BN running statistics, GHM moving
averages, ...), so meta computations never move running statistics.
"""
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmreweight.losses import frozen_loss_statistics
from mmreweight.losses.utils import AVG_FACTOR_EPS
from .base import AnchorLossContext
from .clean_targets import CleanTargetCache, ClsTargets
from .levels import flat_anchor_positions, flatten_levels, unflatten_levels

THETA_CHOICES = ('cls_out', 'head', 'all')


@contextmanager
def preserved_buffers(module: nn.Module) -> Iterator[None]:
    """Restore every buffer of ``module`` that a forward inside the block changed.

    Only changed buffers are written back: an unchanged buffer may be saved by a live autograd graph
    (BN in eval mode saves its running statistics), and an in-place write would invalidate it.
    """
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        with frozen_loss_statistics(module):
            yield
    finally:
        with torch.no_grad():
            for buf, old in saved:
                if not torch.equal(buf, old):
                    buf.copy_(old)


class _Apply(nn.Module):
    """Wrapper so :func:`torch.func.functional_call` can run any function of a module."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.m = module

    def forward(self, fn: Callable, *args: Any) -> Any:
        return fn(self.m, *args)


def call_with(module: nn.Module, tensors: Dict[str, Tensor], fn: Callable, *args):
    """``fn(module, *args)`` with ``module``'s parameters named in ``tensors`` replaced, and every
    buffer replaced by a clone (so BN/GHM running statistics are not updated)."""
    swap = {f'm.{k}': v for k, v in tensors.items()}
    for name, buf in module.named_buffers():
        swap.setdefault(f'm.{name}', buf.detach().clone())
    with frozen_loss_statistics(module):
        return torch.func.functional_call(_Apply(module), swap, (fn, ) + args, strict=False)


def dloss_dlogits(ctx: AnchorLossContext) -> Tensor:
    r"""(N, C) :math:`\partial \ell_a / \partial z_{ac}` (cached in ``ctx.extras``)."""
    if 'dloss_dlogits' not in ctx.extras:
        with torch.enable_grad():  # callers may hold no_grad; the graph is the training loss's
            ctx.extras['dloss_dlogits'] = torch.autograd.grad(
                ctx.loss.sum(), ctx.logits, retain_graph=True)[0].detach()
    return ctx.extras['dloss_dlogits']


def dloss_dlogits_rows(ctx: AnchorLossContext, rows: Tensor) -> Tensor:
    r"""(R, C) :math:`\partial \ell_a / \partial z_{ac}` of the anchors ``rows`` only.

    A loss that is ``anchor_separable`` is evaluated again on those anchors' logits (R rows rather
    than a backward through all N); any other loss (GHM's histogram couples the anchors) goes
    through :func:`dloss_dlogits`.
    """
    head = ctx.extras.get('head')
    if 'dloss_dlogits' in ctx.extras or head is None or \
            not getattr(head.loss_cls, 'anchor_separable', False):
        return dloss_dlogits(ctx)[rows]
    z = ctx.logits.detach()[rows].requires_grad_()
    with torch.enable_grad(), frozen_loss_statistics(head):
        loss = head.per_anchor_cls_loss(z, ctx.labels[rows], ctx.label_weights[rows])
        return torch.autograd.grad(loss.sum(), z)[0].detach()


def clean_detector_loss(detector: nn.Module, inputs: Tensor, data_samples) -> Tensor:
    """The detector's total loss (the sum mmengine's ``parse_losses`` forms), weighter bypassed."""
    head = detector.bbox_head
    ctx = head.plain_loss() if hasattr(head, 'plain_loss') else nullcontext()
    with ctx:
        losses = detector.loss(inputs, data_samples)
    total = 0
    for key, value in losses.items():
        if 'loss' in key:
            total = total + (sum(value) if isinstance(value, (list, tuple)) else value)
    return total


class ThetaView:
    r"""The meta parameters :math:`\theta` of one choice, and the three computations on them.

    * :meth:`prepare_clean` caches, from a clean batch, what evaluating :math:`L_\mathrm{clean}` at
      any :math:`\theta` needs (clean features below :math:`\theta` and anchor targets).
    * :meth:`clean_loss` evaluates :math:`L_\mathrm{clean}` with :math:`\theta` replaced;
      :meth:`clean_loss_and_grad` also its gradient (for ``cls_out`` anchor chunk by anchor chunk).
    * :meth:`logit_tangent` returns :math:`\dot z = J_\theta z\, v` for the training anchors.
    * :meth:`train_grad` returns :math:`\nabla_\theta \sum_a w_a \ell_a / \mathrm{avg\_factor}`.

    :math:`L_\mathrm{clean}` is the detector's loss on the clean batch (classification + box).
    For ``cls_out`` and ``head`` only its classification part depends on :math:`\theta`, so only
    that part is evaluated; for ``all`` the whole loss is.
    """

    def __init__(self, detector: nn.Module, clean_target_cache_mb: float = 256) -> None:
        self.detector = detector
        self.head = detector.bbox_head
        self.names, self.params = self._select()
        if not self.params:
            raise ValueError(f'theta={self.choice!r} selects no trainable parameter.')
        self.clean: Optional[dict] = None
        self.target_cache = CleanTargetCache(self.head, clean_target_cache_mb)

    choice = ''

    def _select(self) -> Tuple[List[str], List[nn.Parameter]]:
        raise NotImplementedError

    def _named(self, prefixes: Sequence[str]) -> Tuple[List[str], List[nn.Parameter]]:
        named = [(n, p) for n, p in self.detector.named_parameters()
                 if p.requires_grad and any(n == q or n.startswith(q + '.') for q in prefixes)]
        return [n for n, _ in named], [p for _, p in named]

    def leaves(self) -> List[Tensor]:
        """Detached copies of :math:`\\theta` that require grad (``.grad`` is never touched)."""
        return [p.detach().requires_grad_() for p in self.params]

    # -- clean side
    def prepare_clean(self, inputs: Tensor, data_samples) -> None:
        raise NotImplementedError

    def _clean_targets(self, featmap_sizes, data_samples, device) -> ClsTargets:
        return self.target_cache(featmap_sizes, data_samples, device)

    def _cls_loss_from_logits(self, logits: Tensor) -> Tensor:
        t = self.clean['targets']
        with frozen_loss_statistics(self.head):
            per_anchor = self.head.per_anchor_cls_loss(logits, t.labels, t.label_weights)
        return per_anchor.sum() / (t.avg_factor + AVG_FACTOR_EPS)

    def clean_loss(self, theta: Sequence[Tensor]) -> Tensor:
        raise NotImplementedError

    def clean_loss_and_grad(self, theta: Sequence[Tensor],
                            chunks: Optional[int] = None) -> Tuple[Tensor, List[Tensor]]:
        r""":math:`L_\mathrm{clean}(\theta)` (detached) and its gradient w.r.t. ``theta``.
        ``chunks``: anchor chunks whose loss graphs are built one after the other, where a view
        supports it (``None``: its default)."""
        loss = self.clean_loss(theta)
        grads = torch.autograd.grad(loss, theta, allow_unused=True)
        return loss.detach(), [torch.zeros_like(t) if g is None else g
                               for g, t in zip(grads, theta)]

    # -- training side
    def logit_tangent(self, ctx: AnchorLossContext, v: Sequence[Tensor]) -> Tensor:
        raise NotImplementedError

    def train_grad(self, ctx: AnchorLossContext, weights: Tensor) -> List[Tensor]:
        objective = (weights.detach() * ctx.loss).sum() / (ctx.avg_factor + AVG_FACTOR_EPS)
        grads = torch.autograd.grad(objective, self.params, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, self.params)]

    def logit_tangent_rows(self, ctx: AnchorLossContext, v: Sequence[Tensor],
                           rows: Tensor) -> Tensor:
        """(R, C) rows ``rows`` of :meth:`logit_tangent` (views may avoid the other rows)."""
        return self.logit_tangent(ctx, v)[rows]

    def alignment(self, ctx: AnchorLossContext, v: Sequence[Tensor],
                  rows: Optional[Tensor] = None) -> Tensor:
        r"""(N,) :math:`s_a = \langle \nabla_\theta \ell_a, v \rangle`, or (R,) for the anchor
        indices ``rows`` only."""
        if rows is None:
            grad, tangent = dloss_dlogits(ctx), self.logit_tangent(ctx, v)
        elif rows.numel() == 0:
            return ctx.logits.new_zeros(0, dtype=torch.float32)
        else:
            grad, tangent = dloss_dlogits_rows(ctx, rows), self.logit_tangent_rows(ctx, v, rows)
        dtype = torch.promote_types(grad.dtype, tangent.dtype)  # bf16 logits under autocast
        return (grad.to(dtype) * tangent.to(dtype)).sum(1)


class ClsOutTheta(ThetaView):
    """theta = the classification output conv (``retina_cls`` weight and bias)."""
    choice = 'cls_out'

    def _select(self):
        conv = self.head.cls_out
        self._slots = [s for s in ('weight', 'bias')
                       if getattr(conv, s, None) is not None and getattr(conv, s).requires_grad]
        prefix = next(n for n, m in self.detector.named_modules() if m is conv)
        return [f'{prefix}.{s}' for s in self._slots], [getattr(conv, s) for s in self._slots]

    def _weight_bias(self, theta, default):
        """(weight, bias) with the slots in theta taken from ``theta``, the others from
        ``default(slot)``."""
        given = dict(zip(self._slots, theta))
        return tuple(given[s] if s in given else default(s) for s in ('weight', 'bias'))

    def _conv(self, feats: Sequence[Tensor], theta: Sequence[Tensor]) -> Tensor:
        conv = self.head.cls_out
        weight, bias = self._weight_bias(theta, lambda s: getattr(conv, s))
        return self.head_flatten([conv._conv_forward(f, weight, bias) for f in feats])

    def train_grad(self, ctx, weights):
        # grad_W sum_a w_a l_a / avg = conv-weight gradient of (w_a / avg) * dl_a/dz_a over the
        # stored features: reuses dl/dz, no second backward through the loss and the graph.
        conv = self.head.cls_out
        feats = [f.detach().to(conv.weight.dtype) for f in ctx.extras['cls_feats']]
        scale = (weights.detach() / (ctx.avg_factor + AVG_FACTOR_EPS)).to(conv.weight.dtype)
        return self._param_grads(feats, dloss_dlogits(ctx).to(conv.weight.dtype) * scale[:, None])

    def _param_grads(self, feats: Sequence[Tensor], dz: Tensor) -> List[Tensor]:
        """Gradient w.r.t. theta of a function of the logits ``z = W * feats + b`` whose gradient
        w.r.t. the (flattened) logits is ``dz``."""
        conv = self.head.cls_out
        cotangent = unflatten_levels(dz, feats, self.head.cls_out_channels)
        grads = {}
        if 'weight' in self._slots:
            grads['weight'] = sum(torch.ops.aten.convolution_backward(
                g, f, conv.weight, None, conv.stride, conv.padding, conv.dilation, False, [0, 0],
                conv.groups, [False, True, False])[1] for f, g in zip(feats, cotangent))
        if 'bias' in self._slots:
            grads['bias'] = sum(g.sum((0, 2, 3)) for g in cotangent)
        return [grads[s] for s in self._slots]

    def head_flatten(self, z):
        return flatten_levels(z, self.head.cls_out_channels)

    def prepare_clean(self, inputs, data_samples):
        with torch.no_grad(), preserved_buffers(self.detector):
            x = self.detector.extract_feat(inputs)
            feats = [self.head.cls_branch_features(xl) for xl in x]
        targets = self._clean_targets([f.shape[-2:] for f in feats], data_samples, inputs.device)
        self.clean = dict(feats=feats, targets=targets)

    def clean_loss(self, theta):
        return self._cls_loss_from_logits(self._conv(self.clean['feats'], theta))

    #: chunks of clean anchors whose loss graphs are built one after the other
    clean_chunks = 4

    def clean_loss_and_grad(self, theta, chunks=None):
        loss_cls = self.head.loss_cls
        if not getattr(loss_cls, 'anchor_separable', False):
            return super().clean_loss_and_grad(theta)
        # MW-Net takes this gradient while the training step's activations are alive. The clean
        # loss is a sum over anchors and z is linear in theta, so dL/dz is taken chunk by chunk
        # (one chunk's loss graph alive at a time, not the whole batch's) and contracted with
        # the features as in train_grad.
        t = self.clean['targets']
        with torch.no_grad():
            logits = self._conv(self.clean['feats'], theta)
        dz, total = torch.empty_like(logits), logits.new_zeros(())
        step = max(1, -(-logits.size(0) // (chunks or self.clean_chunks)))
        with torch.enable_grad(), frozen_loss_statistics(self.head):
            for start in range(0, logits.size(0), step):
                part = slice(start, start + step)
                z = logits[part].detach().requires_grad_()
                loss = self.head.per_anchor_cls_loss(z, t.labels[part], t.label_weights[part])
                loss = loss.sum() / (t.avg_factor + AVG_FACTOR_EPS)
                dz[part] = torch.autograd.grad(loss, z)[0]
                total += loss.detach()
        weight_dtype = theta[0].dtype
        feats = [f.detach().to(weight_dtype) for f in self.clean['feats']]
        return total, self._param_grads(feats, dz.to(weight_dtype))

    def logit_tangent(self, ctx, v):
        # z = W * f + b is linear in (W, b): its JVP along (V_W, V_b) is V_W * f + V_b.
        conv = self.head.cls_out
        feats = [f.detach().to(conv.weight.dtype) for f in ctx.extras['cls_feats']]
        vw, vb = self._weight_bias(
            v, lambda s: torch.zeros_like(conv.weight) if s == 'weight' else None)
        return self.head_flatten([conv._conv_forward(f, vw, vb) for f in feats])

    def logit_tangent_rows(self, ctx, v, rows):
        # Only R of the N anchors: gather each one's receptive field and apply the tangent conv
        # there (one GEMM of R x (A*C) outputs) instead of convolving whole feature maps.
        conv = self.head.cls_out
        if tuple(conv.stride) != (1, 1) or tuple(conv.dilation) != (1, 1) or conv.groups != 1 \
                or not isinstance(conv.padding, tuple) or conv.padding_mode != 'zeros':
            return super().logit_tangent_rows(ctx, v, rows)
        feats = [f.detach().to(conv.weight.dtype) for f in ctx.extras['cls_feats']]
        vw, vb = self._weight_bias(
            v, lambda s: torch.zeros_like(conv.weight) if s == 'weight' else None)
        channels = self.head.cls_out_channels
        anchors = conv.out_channels // channels
        sizes = [tuple(f.shape[-2:]) for f in feats]
        image, level, y, x, anchor = flat_anchor_positions(rows, sizes, anchors)
        (kh, kw), (ph, pw) = conv.kernel_size, conv.padding
        dy = torch.arange(kh, device=rows.device)[None, :, None]
        dx = torch.arange(kw, device=rows.device)[None, None, :]
        out = vw.new_empty(rows.numel(), channels)
        for lvl, f in enumerate(feats):
            here = (level == lvl).nonzero().squeeze(1)
            if here.numel() == 0:
                continue
            padded = torch.nn.functional.pad(f, (pw, pw, ph, ph))
            # (R_l, kh, kw, Cin) -> (R_l, Cin * kh * kw), the layout of the conv weight's rows
            patches = padded[image[here, None, None], :, y[here, None, None] + dy,
                             x[here, None, None] + dx]
            patches = patches.permute(0, 3, 1, 2).reshape(here.numel(), -1)
            z = patches @ vw.reshape(vw.size(0), -1).t()  # (R_l, A * C)
            if vb is not None:
                z = z + vb
            out[here] = z.view(-1, anchors, channels)[torch.arange(here.numel()), anchor[here]]
        return out


class HeadTheta(ThetaView):
    """theta = the head's classification branch (``cls_convs`` and ``retina_cls``)."""
    choice = 'head'

    def _select(self):
        prefix = next(n for n, m in self.detector.named_modules() if m is self.head)
        branch = [n for n, m in self.head.named_children() if n in ('cls_convs', 'retina_cls')]
        if self.head.cls_out is not getattr(self.head, 'retina_cls', None):
            raise TypeError("theta='head' supports RetinaHead-like heads (cls_convs, retina_cls).")
        self._prefix = prefix + '.'
        return self._named([self._prefix + b for b in branch])

    @staticmethod
    def _logits(head, feats):
        z = [head.retina_cls(head.cls_branch_features(x)) for x in feats]
        return flatten_levels(z, head.cls_out_channels)

    def _local(self, tensors):
        return {n[len(self._prefix):]: t for n, t in zip(self.names, tensors)}

    def prepare_clean(self, inputs, data_samples):
        with torch.no_grad(), preserved_buffers(self.detector):
            x = [xl.detach() for xl in self.detector.extract_feat(inputs)]
        targets = self._clean_targets([xl.shape[-2:] for xl in x], data_samples, inputs.device)
        self.clean = dict(feats=x, targets=targets)

    def clean_loss(self, theta):
        logits = call_with(self.head, self._local(theta), self._logits, self.clean['feats'])
        return self._cls_loss_from_logits(logits)

    def logit_tangent(self, ctx, v):
        feats = [x.detach().to(self.params[0].dtype) for x in ctx.extras['feats']]
        primals = tuple(p.detach() for p in self.params)

        def logits(*theta):
            return call_with(self.head, self._local(theta), self._logits, feats)

        with torch.no_grad():
            return torch.func.jvp(logits, primals, tuple(t.detach() for t in v))[1]


class AllTheta(ThetaView):
    """theta = every trainable parameter the classification logits depend on (backbone, neck,
    classification branch). A forward pre-hook on the backbone captures the training images."""
    choice = 'all'

    def _select(self):
        head_prefix = next(n for n, m in self.detector.named_modules() if m is self.head)
        keep = [n for n, _ in self.detector.named_children() if n != head_prefix]
        keep += [f'{head_prefix}.{n}' for n in ('cls_convs', 'retina_cls')]
        self._capture = True
        self._inputs: Optional[Tensor] = None
        self._handle = self.detector.backbone.register_forward_pre_hook(self._grab)
        return self._named(keep)

    def _grab(self, module, args):
        if self._capture and module.training:
            self._inputs = args[0]

    def remove(self) -> None:
        self._handle.remove()

    @contextmanager
    def _no_capture(self):
        previous, self._capture = self._capture, False
        try:
            yield
        finally:
            self._capture = previous

    @staticmethod
    def _logits(detector, images):
        head = detector.bbox_head
        z = [head.retina_cls(head.cls_branch_features(x)) for x in detector.extract_feat(images)]
        return flatten_levels(z, head.cls_out_channels)

    def prepare_clean(self, inputs, data_samples):
        self.clean = dict(inputs=inputs, data_samples=data_samples)

    def clean_loss(self, theta):
        with self._no_capture():
            return call_with(self.detector, dict(zip(self.names, theta)), clean_detector_loss,
                             self.clean['inputs'], self.clean['data_samples'])

    def logit_tangent(self, ctx, v):
        if self._inputs is None:
            raise RuntimeError("theta='all' found no captured training images (the backbone's "
                               'forward pre-hook did not fire in training mode).')
        images = self._inputs.detach().to(self.params[0].dtype)
        primals = tuple(p.detach() for p in self.params)

        def logits(*theta):
            return call_with(self.detector, dict(zip(self.names, theta)), self._logits, images)

        with torch.no_grad(), self._no_capture():
            return torch.func.jvp(logits, primals, tuple(t.detach() for t in v))[1]


def build_theta_view(detector: nn.Module, theta: str,
                     clean_target_cache_mb: float = 256) -> ThetaView:
    """The :class:`ThetaView` for ``theta`` in ``('cls_out', 'head', 'all')``;
    ``clean_target_cache_mb``: see :class:`~mmreweight.weighting.clean_targets.CleanTargetCache`."""
    views = dict(cls_out=ClsOutTheta, head=HeadTheta, all=AllTheta)
    if theta not in views:
        raise ValueError(f'theta must be one of {THETA_CHOICES}, got {theta!r}.')
    head = getattr(detector, 'bbox_head', None)
    if head is None or not getattr(head, 'supports_anchor_weights', False):
        raise TypeError(
            f'{type(head).__name__} cannot take per-anchor weights; use a head with '
            '`supports_anchor_weights` such as mmreweight.ReweightRetinaHead.')
    return views[theta](detector, clean_target_cache_mb)


__all__ = ['THETA_CHOICES', 'ThetaView', 'ClsOutTheta', 'HeadTheta', 'AllTheta', 'build_theta_view',
           'call_with', 'preserved_buffers', 'dloss_dlogits', 'dloss_dlogits_rows',
           'clean_detector_loss', 'flat_anchor_positions', 'unflatten_levels']
