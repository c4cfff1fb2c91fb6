"""DatasetCheckHook and its checks, on handmade datasets and detectors (the runner-level cases are
in tests/integration/test_bad_input.py)."""
import json

import pytest
import torch
from mmengine.dataset import ConcatDataset, RepeatDataset
from mmengine.registry import HOOKS, DefaultScope
from mmengine.runner.loops import BaseLoop

import mmreweight  # noqa: F401
from mmreweight.engine.coco_checks import (check_annotation_files, check_sources,
                                           sources_of_dataset_cfg)
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


# --------------------------------------------------------------------------- annotation files
def write_file(path, images=None, anns=None, names=('a', 'b', 'c'), raw=None):
    """A COCO file: ``images`` (default two 64x64 images), ``anns`` as (image id, category id,
    bbox[, extra fields]) tuples."""
    if raw is None:
        images = images or [dict(id=i, file_name=f'{i}.png', width=64, height=64) for i in (1, 2)]
        annotations = []
        for k, (image, cat, bbox, *extra) in enumerate(anns or []):
            w, h = (bbox[2], bbox[3]) if len(bbox) == 4 else (0, 0)
            ann = dict(id=k + 1, image_id=image, category_id=cat, bbox=bbox, area=w * h,
                       iscrowd=0)
            ann.update(*extra)
            annotations.append(ann)
        raw = json.dumps(dict(images=images, annotations=annotations, categories=[
            dict(id=i + 1, name=n) for i, n in enumerate(names)]))
    path.write_text(raw)
    return str(path)


def source(ann_file, classes=('a', 'b', 'c'), filter_cfg=None, test_mode=False,
           where='train_dataloader.dataset'):
    return next(sources_of_dataset_cfg(dict(type='CocoDataset', ann_file=ann_file,
                                            metainfo=dict(classes=classes), filter_cfg=filter_cfg,
                                            test_mode=test_mode), where))


ONE_EACH = [(1, 1, [0, 0, 8, 8]), (1, 2, [8, 8, 8, 8]), (2, 3, [4, 4, 8, 8])]


@pytest.mark.parametrize('content, error, message', [
    (None, FileNotFoundError, r'annotation file \S+ann.json does not exist; re-export it or fix '
                              r'the path \(ann_file of train_dataloader.dataset\)'),
    ('{"images": [{"id": 1', ValueError, r'annotation file \S+ann.json is not valid JSON \(line '
                                         r'1 col 21\): .*; re-export it or fix the path'),
    ('[]', ValueError, r'holds a JSON list, not a COCO object'),
    ('{"annotations": [{}], "categories": [{"id": 1}]}', ValueError, r"'images' is missing"),
    ('{"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1}]}', ValueError,
     r"'annotations' is empty \(mmdet would drop every image"),
])
def test_unreadable_annotation_files_name_the_file_and_the_fix(tmp_path, content, error,
                                                               message):
    path = tmp_path / 'ann.json'
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=message):
        check_sources([source(str(path))])


def test_test_mode_file_without_annotations_is_allowed(tmp_path):
    """COCO test-dev's image-info file has no 'annotations' key: fine for a test-mode set."""
    path = tmp_path / 'testdev.json'
    path.write_text(json.dumps(dict(images=[dict(id=1, width=8, height=8)],
                                    categories=[dict(id=1, name='a')])))
    [(_, report)] = check_sources([source(str(path), ('a',), test_mode=True)])
    assert (report.boxes, report.kept_images) == (0, 1)


@pytest.mark.parametrize('classes, message', [
    (('a', 'bb', 'c'), r"metainfo classes \['bb'\] are not category names of the file \(its "
                       r"categories: \['a', 'b', 'c'\]\).*Fix metainfo=dict\(classes=\.\.\.\) "
                       r"in train_dataloader.dataset; 'bb' -> 'b'\?"),
    ((1, 2, 3), r"metainfo classes \[1, 2, 3\] are not category names .* 1 -> '1' \(class names "
                r"are strings\)"),
])
def test_class_names_missing_from_the_file(tmp_path, classes, message):
    path = write_file(tmp_path / 'ann.json', anns=ONE_EACH,
                      names=('1', '2', '3') if isinstance(classes[0], int) else 'abc')
    with pytest.raises(ValueError, match=rf'ann.json \(train_dataloader.dataset\): {message}'):
        check_sources([source(path, classes)])


def test_dropped_boxes_are_counted_per_reason(tmp_path):
    nan = float('nan')
    anns = ONE_EACH + [
        (1, 1, [0, 0, -3, 8]), (1, 1, [0, 0, 0.5, 8]), (1, 1, [nan, 0, 8, 8]),
        (1, 1, [70, 70, 8, 8]), (1, 1, [0, 0, 8]), (9, 1, [0, 0, 8, 8]),
        (1, 1, [0, 0, 8, 8], dict(area=0)), (1, 1, [0, 0, 8, 8], dict(ignore=True)),
        (2, 1, [0, 0, 8, 8], dict(iscrowd=1)), (2, 3, [0, 0, 8, 8])]
    [(_, report)] = check_sources([source(write_file(tmp_path / 'ann.json', anns=anns),
                                          classes=('a', 'b'))])
    assert dict(report.dropped) == {
        'zero or negative width/height': 1, 'width or height below 1 px': 1,
        'NaN/inf coordinates': 1, 'outside the image': 1, 'bbox is not 4 numbers': 1,
        'image_id not among the images': 1, 'area missing or <= 0': 1, 'marked ignore': 1,
        'crowd (kept as ignored)': 1, 'category not selected': 2}
    assert report.invalid == 8 and report.boxes == 13
    assert report.per_class == {'a': 1, 'b': 1}
    assert report.summary().startswith('13 boxes, 8 dropped as invalid (1 marked ignore, ')


def test_inf_box_that_mmdet_would_keep_is_an_error(tmp_path):
    path = write_file(tmp_path / 'ann.json', anns=ONE_EACH + [
        (1, 1, [0, 0, float('inf'), 8], dict(area=64))])
    with pytest.raises(ValueError, match=r'1 box\(es\) with inf coordinates pass mmdet\'s checks '
                       r'and would be trained on \(e.g. annotation id 4\)'):
        check_sources([source(path)])


@pytest.mark.parametrize('classes, filter_cfg, images, message', [
    ('ab', dict(filter_empty_gt=True), None, r'of 2 images, filter_empty_gt removed 2 '),
    ('abc', dict(filter_empty_gt=True, min_size=32), [dict(id=1, width=64, height=16)],
     r'of 1 images, min_size=32 removed 1 '),
])
def test_empty_after_filtering_names_the_filter(tmp_path, classes, filter_cfg, images, message):
    path = write_file(tmp_path / 'ann.json', images=images, anns=[(1, 3, [0, 0, 8, 8])])
    with pytest.raises(ValueError, match=rf'ann.json \(train_dataloader.dataset\) is empty after '
                       rf'filtering: {message}.*relax train_dataloader.dataset.filter_cfg'):
        check_sources([source(path, tuple(classes), filter_cfg)])
    [(_, report)] = check_sources([source(path, tuple(classes), filter_cfg, test_mode=True)])
    assert report.kept_images == len(images or [1, 2])  # test mode: mmdet does not filter


def test_config_preflight_covers_every_dataloader_and_hook_loaders(tmp_path):
    from mmengine.config import Config
    good = write_file(tmp_path / 'good.json', anns=ONE_EACH)
    bad = write_file(tmp_path / 'clean.json', raw='{"images": [')

    def loader(ann_file):
        return dict(dataset=dict(type='CocoDataset', data_root=str(tmp_path), ann_file=ann_file,
                                 metainfo=dict(classes=('a', 'b', 'c'))))

    cfg = Config(dict(train_dataloader=loader('good.json'), val_dataloader=loader(good),
                      test_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
                          loader('good.json')['dataset']])),
                      custom_hooks=[dict(type='X'), dict(type='Y', clean_dataloader=loader(bad))]))
    with pytest.raises(ValueError, match=r'clean.json is not valid JSON .*\(ann_file of '
                       r'custom_hooks\[1\].clean_dataloader.dataset\)'):
        check_annotation_files(cfg)
    assert check_annotation_files(cfg, ('test_dataloader',)) == 1  # hooks: training only
    cfg.custom_hooks.pop()
    assert check_annotation_files(cfg) == 3


class Logger:
    def __init__(self):
        self.infos, self.warnings = [], []

    def info(self, msg):
        self.infos.append(msg)

    def warning(self, msg):
        self.warnings.append(msg)


def fake_runner(train_file, model=None, val=None, test=None, hooks=()):
    runner = type('Runner', (), {})()
    runner.model = model or dense_detector(3)
    runner.logger = Logger()
    runner.train_dataloader = type('Loader', (), dict(dataset=Classes('abc', train_file)))()
    runner.val_loop = val
    runner._test_loop, runner._test_dataloader = None, test
    runner.hooks = list(hooks)
    return runner


def test_hook_logs_drops_and_warns_above_the_threshold(tmp_path):
    anns = ONE_EACH * 30 + [(1, 1, [0, 0, 0.5, 8])] * 2  # 2 of 92 boxes invalid: 2.2%
    path = write_file(tmp_path / 'ann.json', anns=anns)
    runner = fake_runner(path)
    DatasetCheckHook(max_dropped_fraction=0.05).before_train(runner)
    assert runner.logger.infos == [
        f'DatasetCheckHook: train_dataloader.dataset ({path}): 92 boxes, 2 dropped as invalid '
        '(2 width or height below 1 px); 2 images, 2 left'] and not runner.logger.warnings
    runner = fake_runner(path)
    DatasetCheckHook().before_train(runner)
    [warning] = runner.logger.warnings
    assert warning == (f'DatasetCheckHook: train_dataloader.dataset ({path}): 2 of 92 boxes '
                       '(2.2%) are dropped as invalid (2 width or height below 1 px), more than '
                       'max_dropped_fraction=0.01; fix the boxes in the file, or raise '
                       'default_hooks.dataset_check.max_dropped_fraction')


def test_hook_refuses_a_class_without_training_boxes(tmp_path):
    path = write_file(tmp_path / 'ann.json', anns=[(1, 1, [0, 0, 8, 8]), (2, 2, [0, 0, 8, 8]),
                                                   (2, 3, [0, 0, 0.2, 8])])
    with pytest.raises(ValueError, match=r"ann.json \(train_dataloader.dataset\): selected "
                       r"class\(es\) \['c'\] have no box left for training \(3 boxes, 1 dropped "
                       r"as invalid \(1 width or height below 1 px\).*empty_class='warn'"):
        DatasetCheckHook().before_train(fake_runner(path))
    runner = fake_runner(path)
    DatasetCheckHook(empty_class='warn').before_train(runner)
    assert "selected class(es) ['c'] have no box" in runner.logger.warnings[-1]


def test_hook_checks_val_test_and_clean_sets_before_training(tmp_path):
    good = write_file(tmp_path / 'good.json', anns=ONE_EACH)
    typo = write_file(tmp_path / 'typo.json', anns=ONE_EACH, names=('a', 'b', 'cc'))

    def dataset_cfg(path):
        return dict(type='CocoDataset', ann_file=path, metainfo=dict(classes=('a', 'b', 'c')))

    loop_cls = type('Loop', (BaseLoop,), dict(run=lambda self: None))
    val = loop_cls.__new__(loop_cls)  # a built loop, as the runner's before training
    val.dataloader = type('Loader', (), dict(dataset=Classes('abc', typo)))()
    hook = type('MetaHook', (), dict(clean_dataloader_cfg=dict(dataset=dataset_cfg(typo))))()
    cases = [(dict(val=val), r'\(val_dataloader.dataset\): metainfo classes \[.c.\]'),
             (dict(test=dict(dataset=dataset_cfg(typo))), r'\(test_dataloader.dataset\)'),
             (dict(hooks=[hook]), r'\(MetaHook.clean_dataloader.dataset\): metainfo classes')]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            DatasetCheckHook().before_train(fake_runner(good, **kwargs))
    DatasetCheckHook().before_train(fake_runner(good, test=dict(dataset=dataset_cfg(good))))


def test_loss_num_classes_must_match_the_head(tmp_path):
    detector = dense_detector(10)
    detector.bbox_head.loss_cls = torch.nn.Module()
    detector.bbox_head.loss_cls.num_classes = 9
    runner = fake_runner(write_file(tmp_path / 'ann.json', anns=ONE_EACH), model=detector)
    with pytest.raises(ValueError, match=r'model.bbox_head.loss_cls \(Module\) has num_classes=9 '
                       r'but model.bbox_head \(Module\) has num_classes=10: .*set '
                       r'model.bbox_head.loss_cls.num_classes and model.bbox_head.num_classes'):
        DatasetCheckHook(check_annotation_files=False).before_train(runner)
