"""LabelIssueWeighter against weights worked out by hand, and the head's per-anchor marks."""
import pytest
import torch
from mmengine.structures import InstanceData

from mmreweight.models.reweight_retina_head import anchors_of_marked
from mmreweight.registry import MODELS
from mmreweight.weighting.base import AnchorLossContext
from mmreweight.weighting.label_issues import LabelIssueWeighter

C = 3  # foreground classes; label C = background


def make_ctx(labels, marked, label_weights=None):
    labels = torch.tensor(labels)
    lw = torch.ones(len(labels)) if label_weights is None else torch.tensor(label_weights)
    return AnchorLossContext(loss=torch.rand(len(labels)), logits=torch.zeros(len(labels), C),
                             labels=labels, label_weights=lw, num_classes=C,
                             avg_factor=float((labels < C).sum()),
                             extras=dict(gt_label_issue=torch.tensor(marked)))


def test_weights_by_hand():
    # anchors: bg, fg, marked fg, fg, ignored bg, marked fg, bg
    ctx = make_ctx([C, 0, 1, 2, C, 0, C], [False, False, True, False, False, True, False],
                   [1., 1., 1., 1., 0., 1., 1.])
    w = LabelIssueWeighter()(ctx)
    # 4 valid foreground anchors, 2 unmarked: those get 4 / 2 = 2; background keeps 1, the
    # ignored anchor 0
    assert w.tolist() == [1., 2., 0., 2., 0., 0., 1.]
    assert LabelIssueWeighter().log_scalars() == dict(label_issue_anchors=0.0)


def test_nothing_marked_is_the_unweighted_loss():
    ctx = make_ctx([C, 0, 1, C], [False] * 4, [1., 1., 1., 0.])
    assert LabelIssueWeighter()(ctx).tolist() == [1., 1., 1., 0.]


def test_needs_the_heads_marks():
    ctx = make_ctx([C, 0], [False, False])
    ctx.extras.clear()
    with pytest.raises(ValueError, match='ReweightRetinaHead'):
        LabelIssueWeighter()(ctx)
    assert isinstance(MODELS.build(dict(type='LabelIssueWeighter')), LabelIssueWeighter)


def test_anchors_of_marked_follow_the_batch_numbering():
    # image 0: 2 annotations (the second marked), image 1: 1 annotation without the field
    gts = [InstanceData(labels=torch.tensor([0, 1]), label_issue=torch.tensor([False, True])),
           InstanceData(labels=torch.tensor([2]))]
    gt_index = torch.tensor([-1, 0, 1, 1, 2, -1])
    assert anchors_of_marked(gts, gt_index).tolist() == [False, False, True, True, False, False]
    assert not anchors_of_marked([InstanceData(labels=torch.tensor([]))],
                                 torch.tensor([-1, -1])).any()
