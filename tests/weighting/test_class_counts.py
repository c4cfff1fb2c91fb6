"""count_instances_per_class on mmdet datasets and wrappers, and ClassCountsHook filling the
class-balanced losses of a (DDP-wrapped) model."""
import json
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from mmengine.dataset import ConcatDataset, RepeatDataset
from torch.utils.data import Subset

from mmdet.datasets import CocoDataset
from mmreweight.engine.class_counts_hook import ClassCountsHook
from mmreweight.losses import CBFocalLoss, class_balanced_weights
from mmreweight.registry import HOOKS
from mmreweight.weighting.class_counts import count_instances_per_class

CLASSES = ('cat', 'dog', 'bird')


class ListDataset:
    """The part of mmdet's dataset API that counting uses."""
    metainfo = dict(classes=CLASSES)

    def __init__(self, images):
        self.images = images  # per image: list of (label, ignore_flag)

    def __len__(self):
        return len(self.images)

    def get_data_info(self, i):
        return dict(instances=[dict(bbox=[0, 0, 1, 1], bbox_label=label, ignore_flag=ignore)
                               for label, ignore in self.images[i]])


def make_list_dataset():
    return ListDataset([[(0, 0), (0, 0), (2, 0)], [(1, 1), (2, 0)], [], [(0, 0), (1, 0)]])


def test_counts_skip_ignored_instances():
    assert count_instances_per_class(make_list_dataset()).tolist() == [3, 1, 2]


def test_wrappers():
    ds = make_list_dataset()
    # repeating the same images does not add samples; concatenating does; a subset counts its own
    assert count_instances_per_class(SimpleNamespace(dataset=ds, metainfo=ds.metainfo)).tolist() \
        == [3, 1, 2]
    assert count_instances_per_class(SimpleNamespace(datasets=[ds, ds], metainfo=ds.metainfo)) \
        .tolist() == [6, 2, 4]
    assert count_instances_per_class(Subset(ds, [1, 3]), num_classes=3).tolist() == [1, 1, 1]


def test_label_out_of_range_raises():
    with pytest.raises(ValueError, match='bbox_label'):
        count_instances_per_class(ListDataset([[(3, 0)]]))


@pytest.fixture
def coco_dataset(tmp_path):
    images = [dict(id=i, file_name=f'{i}.jpg', width=64, height=64) for i in range(1, 4)]
    boxes = [(1, 1), (1, 1), (1, 3), (2, 2), (2, 2), (3, 1), (3, 2)]  # (image, category)
    annotations = [dict(id=k, image_id=img, category_id=cat, bbox=[4, 4, 20, 20], area=400,
                        iscrowd=0) for k, (img, cat) in enumerate(boxes, 1)]
    annotations.append(dict(id=99, image_id=3, category_id=3, bbox=[1, 1, 30, 30], area=900,
                            iscrowd=1))  # crowd: ignore_flag=1, not counted
    categories = [dict(id=i, name=name) for i, name in enumerate(CLASSES, 1)]
    ann_file = tmp_path / 'ann.json'
    ann_file.write_text(json.dumps(dict(images=images, annotations=annotations,
                                        categories=categories)))
    return CocoDataset(ann_file=str(ann_file), data_root=str(tmp_path), data_prefix=dict(img=''),
                       metainfo=dict(classes=CLASSES), pipeline=[], filter_cfg=None)


def test_coco_dataset_and_mmengine_wrappers(coco_dataset):
    assert count_instances_per_class(coco_dataset).tolist() == [3, 3, 1]
    assert count_instances_per_class(RepeatDataset(coco_dataset, times=3)).tolist() == [3, 3, 1]
    assert count_instances_per_class(ConcatDataset([coco_dataset, coco_dataset])).tolist() \
        == [6, 6, 2]


class RecordingLogger:

    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)


def make_model():
    head = torch.nn.Module()
    head.loss_cls = CBFocalLoss(num_classes=3, beta=0.99)
    head.aux = CBFocalLoss(num_classes=3, beta=0.9, loss_type='sigmoid')
    head.fixed = CBFocalLoss(num_classes=3, class_counts=[1, 1, 1])
    head.conv = torch.nn.Linear(2, 3)
    return head


def test_hook_fills_losses_without_explicit_counts(coco_dataset):
    hook = HOOKS.build(dict(type='mmreweight.ClassCountsHook'))
    assert isinstance(hook, ClassCountsHook)
    model = make_model()
    runner = SimpleNamespace(model=model, logger=RecordingLogger(),
                             train_dataloader=SimpleNamespace(dataset=coco_dataset))
    hook.before_train(runner)
    assert model.loss_cls.class_counts.tolist() == [3, 3, 1]
    assert model.loss_cls.class_weights[:3].tolist() == pytest.approx(
        class_balanced_weights([3, 3, 1], 0.99).tolist())
    assert model.aux.class_weights[:3].tolist() == pytest.approx(
        class_balanced_weights([3, 3, 1], 0.9).tolist())
    assert model.fixed.class_counts.tolist() == [1, 1, 1]  # explicit counts are kept
    assert len(runner.logger.lines) == 2 and 'bird: 1 ->' in runner.logger.lines[0]
    model.loss_cls(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))  # usable now


def test_hook_unwraps_ddp(coco_dataset, tmp_path):
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        model = torch.nn.parallel.DistributedDataParallel(make_model())
        runner = SimpleNamespace(model=model, logger=RecordingLogger(),
                                 train_dataloader=SimpleNamespace(dataset=coco_dataset))
        ClassCountsHook().before_train(runner)
        assert model.module.loss_cls.class_counts.tolist() == [3, 3, 1]
    finally:
        dist.destroy_process_group()
