"""Per-anchor weights that leave the annotations flagged as mislabelled out of the classification
loss.

:class:`~mmreweight.engine.label_issue_hook.LabelIssueHook` (``action='flag'``) marks the flagged
annotations of every training batch (``gt_instances.label_issue``); the head
(:class:`~mmreweight.models.ReweightRetinaHead`) passes, per anchor, whether the annotation it is
matched to is marked (``extras['gt_label_issue']``). The weights are the noise oracle's
(:class:`~mmreweight.weighting.noise_oracle.NoiseOracleWeighter`) with the finder's flags in place
of the benchmark's record of the flips: 0 on the valid anchors of flagged annotations, 1 on the
other valid foreground anchors, scaled to mean one over the valid foreground; background anchors
keep weight 1. The box loss is untouched: a mislabelled box is still a well-placed box.
"""
from torch import Tensor

from mmreweight.registry import MODELS
from .base import AnchorLossContext, AnchorWeighter, down_weight_foreground


@MODELS.register_module()
class LabelIssueWeighter(AnchorWeighter):
    """Weight 0 for the anchors of annotations flagged as mislabelled, mean one over the valid
    foreground anchors; uniform weights until the first flags arrive."""

    def forward(self, ctx: AnchorLossContext) -> Tensor:
        flagged = ctx.extras.get('gt_label_issue')
        if flagged is None:
            raise ValueError('LabelIssueWeighter needs the head to pass gt_label_issue (use '
                             'mmreweight.ReweightRetinaHead)')
        self._flagged = int((flagged & ctx.valid & ctx.foreground).sum())
        return down_weight_foreground(ctx, flagged)

    def log_scalars(self):
        """How many valid foreground anchors of the last batch belonged to flagged annotations."""
        return dict(label_issue_anchors=float(getattr(self, '_flagged', 0)))


__all__ = ['LabelIssueWeighter']
