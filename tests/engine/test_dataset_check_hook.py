"""DatasetCheckHook and its checks, on handmade datasets and detectors (the runner-level cases are
in tests/integration/test_bad_input.py)."""
import json

import pytest
import torch
from mmengine.dataset import ConcatDataset, RepeatDataset
from mmengine.registry import HOOKS, DefaultScope

import mmreweight  # noqa: F401
from mmreweight.engine.dataset_check_hook import (DatasetCheckHook, check_category_ids,
                                                  check_classes_fit_heads, class_heads,
                                                  leaf_datasets, undeclared_category_ids)


class Classes:
    """A dataset stand-in: a class list and, optionally, an annotation file."""

    def __init__(self, classes, ann_file=None):
        self.metainfo = dict(classes=tuple(classes))
        self.ann_file = ann_file


def head(num_classes):
    module = torch.nn.Module()
    module.num_classes = num_classes
    return module


def dense_detector(num_classes):
    detector = torch.nn.Module()
    detector.bbox_head = head(num_classes)
    return detector


def cascade_detector(num_classes, rpn_classes=1):
    detector = torch.nn.Module()
    detector.rpn_head = head(rpn_classes)
    detector.roi_head = torch.nn.Module()
    detector.roi_head.bbox_head = torch.nn.ModuleList([head(num_classes), head(num_classes)])
    return detector


def coco_file(path, category_ids, declared=(1, 2, 3)):
    path.write_text(json.dumps(dict(
        images=[dict(id=1, file_name='a.png', width=8, height=8)],
        annotations=[dict(id=i + 1, image_id=1, category_id=c, bbox=[0, 0, 4, 4], area=16,
                          iscrowd=0) for i, c in enumerate(category_ids)],
        categories=[dict(id=c, name=str(c)) for c in declared])))
    return str(path)


def test_leaf_datasets_look_through_mmengine_wrappers():
    a, b = Classes('xy'), Classes('xyz')
    concat = ConcatDataset.__new__(ConcatDataset)
    concat.datasets = [a, b]
    repeat = RepeatDataset.__new__(RepeatDataset)
    repeat.dataset = concat
    assert list(leaf_datasets(repeat)) == [a, b]
    assert list(leaf_datasets(a)) == [a]


def test_class_heads_skip_the_class_agnostic_rpn():
    assert [n for n, _ in class_heads(dense_detector(3))] == ['bbox_head']
    assert [n for n, _ in class_heads(cascade_detector(3))] == [
        'roi_head.bbox_head[0]', 'roi_head.bbox_head[1]']


@pytest.mark.parametrize('detector', [dense_detector, cascade_detector])
def test_classes_must_equal_num_classes(detector):
    check_classes_fit_heads(Classes('abc'), detector(3))
    for classes in ('abcd', 'ab'):
        with pytest.raises(ValueError, match=rf"has {len(classes)} classes .*num_classes is 3"):
            check_classes_fit_heads(Classes(classes), detector(3), 'training set')


def test_undeclared_category_ids_are_found(tmp_path):
    assert undeclared_category_ids(coco_file(tmp_path / 'ok.json', [1, 2, 3, 3])) is None
    ids, count, image = undeclared_category_ids(coco_file(tmp_path / 'bad.json', [1, 7, 0, 7]))
    assert (ids, count, image) == ({0, 7}, 3, 1)
    (tmp_path / 'list.json').write_text('[1, 2]')  # not COCO: nothing to check
    assert undeclared_category_ids(str(tmp_path / 'list.json')) is None


def test_category_check_names_the_file_and_checks_each_file_once(tmp_path):
    bad = coco_file(tmp_path / 'bad.json', [1, 9])
    with pytest.raises(ValueError, match=r"bad.json \(the training set\): 1 annotation\(s\) have "
                       r"a category_id its 'categories' does not declare: \[9\]"):
        check_category_ids(Classes('abc', bad), 'training set')
    checked = {bad}
    check_category_ids(Classes('abc', bad), 'training set', checked)  # already checked: skipped
    good = coco_file(tmp_path / 'good.json', [1, 2])
    check_category_ids(Classes('abc', good), checked=checked)
    assert checked == {bad, good}


def test_hook_is_registered_and_can_skip_file_checks(tmp_path):
    with DefaultScope.overwrite_default_scope('mmdet'):  # as in an mmdet config
        hook = HOOKS.build(dict(type='mmreweight.DatasetCheckHook', check_annotation_files=False))
    assert isinstance(hook, DatasetCheckHook)

    class Runner:
        model = dense_detector(3)
        train_dataloader = type('Loader', (), dict(
            dataset=Classes('abc', coco_file(tmp_path / 'bad.json', [9]))))()

    hook.before_train(Runner)  # the file is not read
    with pytest.raises(ValueError, match='does not declare'):
        DatasetCheckHook().before_train(Runner)
    Runner.model = dense_detector(4)
    with pytest.raises(ValueError, match='num_classes is 4'):
        hook.before_train(Runner)
