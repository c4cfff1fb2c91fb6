"""The bad-input catalogue, through the configs and mmengine's Runner (what a user runs).

Each case: the error (type and a message naming the problem) and nothing half-written: no
checkpoint in the work dir, no staging folder in the data root. Component-level versions of
several cases live next to their components and are not repeated here:
tests/engine/test_meta_hook.py::test_bad_input_errors (toy datasets), tests/engine/
test_checkpoint.py (corrupt / missing files), tests/losses/test_class_balanced.py (beta, zero
counts), tests/losses/test_loss_inputs.py (check_finite), tests/datasets/test_benchmark_errors.py
(benchmark parameters, missing IDX files, interrupted generation).
"""
import copy
import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from integration_helpers import add_hooks, build_runner, tiny_cfg

from mmreweight.testing.distributed import free_port, gloo_process_group

pytestmark = pytest.mark.slow

CLASSES = ('a', 'b', 'c')
#: mmdet's plain pipeline: handmade COCO files carry no clean labels / noise flags
PLAIN_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputs'),
]


def write_coco(root: Path, name: str, objects_per_image, categories=CLASSES,
               write_images=True) -> str:
    """A COCO file ``<root>/<name>.json`` with one 64x64 image per entry of
    ``objects_per_image`` (a list of category ids, 1-based, one box each; [] for none), and the
    images in ``<root>/images``; returns the json's path."""
    images, anns = [], []
    (root / 'images').mkdir(parents=True, exist_ok=True)
    for i, cats in enumerate(objects_per_image):
        file_name = f'{name}_{i}.png'
        img = np.zeros((64, 64, 3), np.uint8)
        for j, cat in enumerate(cats):
            x = 4 + 20 * j
            img[8:40, x:x + 16] = 255
            anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=cat,
                             bbox=[x, 8, 16, 32], area=16 * 32, iscrowd=0))
        if write_images:
            cv2.imwrite(str(root / 'images' / file_name), img)
        images.append(dict(id=i + 1, file_name=file_name, width=64, height=64))
    cats = [dict(id=k + 1, name=n) for k, n in enumerate(categories)]
    path = root / f'{name}.json'
    path.write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))
    return str(path)


def coco_dataset(ann_file, classes=CLASSES, filter_empty=True):
    return dict(type='CocoDataset', data_root='', ann_file=ann_file,
                data_prefix=dict(img=str(Path(ann_file).parent / 'images') + '/'),
                metainfo=dict(classes=classes),
                filter_cfg=dict(filter_empty_gt=filter_empty, min_size=4),
                pipeline=PLAIN_PIPELINE)


def on_coco(cfg, ann_file, classes=CLASSES, filter_empty=True):
    """``cfg`` training on a handmade COCO file with ``len(classes)`` classes."""
    cfg = copy.deepcopy(cfg)
    cfg.train_dataloader.dataset = coco_dataset(ann_file, classes, filter_empty)
    cfg.model.bbox_head.num_classes = len(classes)
    if 'num_classes' in cfg.model.bbox_head.loss_cls:
        cfg.model.bbox_head.loss_cls.num_classes = len(classes)
    return cfg


def assert_nothing_written(work_dir, data_root=None):
    work_dir = Path(work_dir)
    if work_dir.exists():
        left = sorted(str(p.relative_to(work_dir)) for p in work_dir.rglob('*')
                      if p.suffix == '.pth' or p.name == 'last_checkpoint')
        assert not left, f'checkpoints written: {left}'
    if data_root is not None:
        staging = [p.name for p in Path(data_root).iterdir() if '.tmp-' in p.name]
        assert not staging, f'partial benchmark left in the data root: {staging}'


def train(cfg):
    runner = build_runner(cfg)
    runner.train()
    return runner


# --------------------------------------------------------------------------- class counts
def test_class_absent_from_training_set_is_an_error_naming_it(tmp_path, data_root):
    ann = write_coco(tmp_path / 'coco', 'train', [[1], [2], [1, 2]])  # no 'c'
    cfg = on_coco(tiny_cfg('retinanet_cb_focal.py', tmp_path / 'work', 1), ann)
    cfg.default_hooks.dataset_check.empty_class = 'warn'  # the loss's own policy answers
    cfg.model.bbox_head.loss_cls.zero_count_policy = 'error'
    with pytest.raises(ValueError, match='classes without any sample: c$'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work')


def test_class_absent_from_training_set_warns_naming_it(tmp_path, data_root):
    ann = write_coco(tmp_path / 'coco', 'train', [[1], [2], [1, 2]])
    cfg = on_coco(tiny_cfg('retinanet_cb_focal.py', tmp_path / 'work', 1, batch_size=2), ann)
    cfg.default_hooks.dataset_check.empty_class = 'warn'  # the loss's own policy answers
    with pytest.warns(UserWarning, match='rarest seen class: c$'):
        runner = train(cfg)
    loss = runner.model.bbox_head.loss_cls
    assert loss.class_counts.tolist() == [2, 2, 0]
    # 'c' gets the rarest seen class's weight ('a' and 'b' tie): all three equal
    torch.testing.assert_close(loss.class_weights[:3], torch.ones(3))


# --------------------------------------------------------------------------- annotations
def test_images_without_annotations_are_dropped_from_training(tmp_path, data_root):
    ann = write_coco(tmp_path / 'coco', 'train', [[1], [], [2], [], [3]])
    cfg = on_coco(tiny_cfg('retinanet_focal.py', tmp_path / 'work', 2, batch_size=2), ann)
    runner = train(cfg)
    dataset = runner.train_dataloader.dataset
    assert len(dataset) == 3  # filter_empty_gt dropped the two empty images
    assert all(dataset.get_data_info(i)['instances'] for i in range(3))


def _clean_from_coco(tmp_path, objects_per_image, **dataset):
    """The meta hook's own guards, as in a config without DatasetCheckHook (which refuses such
    a clean file before training: see test_bad_clean_file_is_refused_before_training)."""
    ann = write_coco(tmp_path / 'coco', 'clean', objects_per_image)
    cfg = tiny_cfg('retinanet_l2rw.py', tmp_path / 'work', 2)
    cfg.default_hooks.pop('dataset_check')
    clean = coco_dataset(ann, classes=tuple(str(i) for i in range(10)))
    clean.update(dataset)
    cfg.custom_hooks[0].clean_dataloader.dataset = clean
    return cfg


def test_clean_images_without_annotations_kept(tmp_path, data_root):
    """Kept (filter_empty_gt=False): the meta step refuses a clean batch without objects."""
    cfg = _clean_from_coco(tmp_path, [[], [], []], filter_cfg=dict(filter_empty_gt=False))
    with pytest.raises(ValueError, match='empty clean batch'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work', data_root)


def test_clean_subset_empty_after_filtering_unserialized(tmp_path, data_root):
    """filter_empty_gt removed every clean image: the hook says the clean subset is empty."""
    cfg = _clean_from_coco(tmp_path, [[], [], []], serialize_data=False)
    with pytest.raises(ValueError, match='the clean subset is empty'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work', data_root)


def test_clean_subset_empty_after_filtering(tmp_path, data_root):
    """mmengine fails serialising an empty dataset ('need at least one array to concatenate');
    the hook answers with what is wrong instead."""
    cfg = _clean_from_coco(tmp_path, [[], [], []])  # the configs' default: serialize_data=True
    with pytest.raises(ValueError, match='clean subset is empty'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work', data_root)


def test_clean_subset_overlapping_the_training_set(tmp_path, data_root):
    cfg = tiny_cfg('retinanet_mwnet.py', tmp_path / 'work', 2)
    cfg.custom_hooks[0].clean_dataloader.dataset.split = 'train'  # the training images
    with pytest.raises(ValueError, match=r'overlaps the training set in \d+ images'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work', data_root)


def test_annotation_with_unknown_category_is_an_error(tmp_path, data_root):
    """mmdet's CocoDataset drops a box whose category_id the file does not declare;
    DatasetCheckHook (in the configs' default_hooks) refuses the file, naming the id."""
    ann = write_coco(tmp_path / 'coco', 'train', [[1], [2, 99], [3]])
    cfg = on_coco(tiny_cfg('retinanet_focal.py', tmp_path / 'work', 1, batch_size=3), ann)
    with pytest.raises(ValueError, match=r"1 annotation\(s\) have a category_id its "
                       r"'categories' does not declare: \[99\] \(e.g. in image 2\)"):
        train(cfg)
    assert_nothing_written(tmp_path / 'work', data_root)


def test_declared_categories_outside_the_class_list_are_a_subset(tmp_path, data_root):
    """Selecting classes with metainfo (mmdet's way to train on a subset) stays allowed: boxes of
    declared but unselected categories are left out, as mmdet does."""
    ann = write_coco(tmp_path / 'coco', 'train', [[1], [2, 4], [3]], categories=CLASSES + ('d',))
    cfg = on_coco(tiny_cfg('retinanet_focal.py', tmp_path / 'work', 1, batch_size=3), ann)
    runner = train(cfg)
    boxes = sum(len(runner.train_dataloader.dataset.get_data_info(i)['instances'])
                for i in range(3))
    assert runner.iter == 1 and boxes == 3


@pytest.mark.parametrize('dataset_classes', [CLASSES + ('d',), CLASSES[:2]])
def test_dataset_classes_must_match_the_heads_num_classes(tmp_path, data_root, dataset_classes):
    """One class more than the head trains it as background (label num_classes); one fewer
    leaves an output untrained: both are refused before training."""
    ann = write_coco(tmp_path / 'coco', 'train', [[1], [2], [3], [4]],
                     categories=CLASSES + ('d',))
    cfg = on_coco(tiny_cfg('retinanet_focal.py', tmp_path / 'work', 1, batch_size=4), ann)
    cfg.train_dataloader.dataset.metainfo = dict(classes=dataset_classes)
    with pytest.raises(ValueError, match=rf'the training set \(CocoDataset\) has '
                       rf'{len(dataset_classes)} classes .* model.bbox_head.num_classes is 3'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work', data_root)


def test_dataset_label_beyond_background_is_an_error(tmp_path, data_root):
    """Labels past the background index (two classes more than the head has) are refused by the
    loss's value check, naming the target, even in a config without DatasetCheckHook."""
    ann = write_coco(tmp_path / 'coco', 'train', [[5], [5], [5], [5]],
                     categories=CLASSES + ('d', 'e'))
    cfg = on_coco(tiny_cfg('retinanet_focal.py', tmp_path / 'work', 1, batch_size=4), ann)
    cfg.train_dataloader.dataset.metainfo = dict(classes=CLASSES + ('d', 'e'))
    cfg.default_hooks.pop('dataset_check')
    with pytest.raises(ValueError, match=r'class indices outside \[0, 3\]'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work')


def test_cb_counts_refuse_labels_outside_the_head(tmp_path, data_root):
    ann = write_coco(tmp_path / 'coco', 'train', [[1], [4]], categories=CLASSES + ('d',))
    cfg = on_coco(tiny_cfg('retinanet_cb_focal.py', tmp_path / 'work', 1), ann)
    cfg.train_dataloader.dataset.metainfo = dict(classes=CLASSES + ('d',))
    cfg.model.bbox_head.num_classes = cfg.model.bbox_head.loss_cls.num_classes = 3
    cfg.default_hooks.pop('dataset_check')  # ClassCountsHook's own check, without that hook's
    with pytest.raises(ValueError, match=r'bbox_label outside \[0, 3\): \[3\]'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work')


def test_bad_clean_file_is_refused_before_training(tmp_path, data_root):
    """DatasetCheckHook checks a meta hook's clean dataloader in before_train, before the meta
    hook builds it: a clean file without annotations is named with the fix."""
    ann = write_coco(tmp_path / 'coco', 'clean', [[], []], categories=tuple('0123456789'))
    cfg = tiny_cfg('retinanet_l2rw.py', tmp_path / 'work', 2)
    cfg.custom_hooks[0].clean_dataloader.dataset = coco_dataset(ann, tuple('0123456789'))
    with pytest.raises(ValueError, match=rf"annotation file {re.escape(ann)}: 'annotations' is "
                       r"empty .*re-export it or fix the path \(ann_file of "
                       r"MetaReweightHook.clean_dataloader.dataset\)"):
        train(cfg)
    assert_nothing_written(tmp_path / 'work', data_root)


# --------------------------------------------------------------------------- annotation files
def tool_runner(cfg):
    """The runner as tools/train.py builds it (annotation files checked first)."""
    from mmreweight.engine.runner_config import build_runner as build_tool_runner
    return build_tool_runner(copy.deepcopy(cfg))


@pytest.mark.parametrize('damage, message', [
    ('int names', r"metainfo classes \[1, 2, 3\] are not category names of the file \(its "
                  r"categories: \['a', 'b', 'c'\]\).*Fix metainfo=dict\(classes=\.\.\.\) in "
                  r'train_dataloader.dataset'),
    ('typo', r"metainfo classes \['cc'\] are not category names .*'cc' -> 'c'\?"),
    ('empty annotations', r"'annotations' is empty"),
    ('truncated', r'is not valid JSON \(line 1 col \d+\)'),
])
def test_bad_training_file_is_refused_before_the_datasets_are_built(tmp_path, damage, message):
    """Stock mmdet fails on int class names or an empty annotation list with "need at least one
    array to concatenate", and trains a typo'd class list with shifted labels."""
    ann = write_coco(tmp_path / 'coco', 'train', [[] for _ in range(3)] if
                     damage == 'empty annotations' else [[1], [2], [3]], write_images=False)
    if damage == 'truncated':
        Path(ann).write_text(Path(ann).read_text()[:40])
    classes = dict(typo=('a', 'b', 'cc')).get(damage, (1, 2, 3) if damage == 'int names'
                                               else CLASSES)
    cfg = on_coco(tiny_cfg('retinanet_focal.py', tmp_path / 'work', 1), ann, classes)
    with pytest.raises(ValueError, match=rf'{re.escape(ann)}.*{message}'):
        tool_runner(cfg)
    assert_nothing_written(tmp_path / 'work')


def test_file_emptied_by_filtering_names_the_filter(tmp_path):
    ann = write_coco(tmp_path / 'coco', 'train', [[4], [4]], categories=CLASSES + ('d',),
                     write_images=False)
    cfg = on_coco(tiny_cfg('retinanet_focal.py', tmp_path / 'work', 1), ann)
    with pytest.raises(ValueError, match=r'\(train_dataloader.dataset\) is empty after '
                       r'filtering: of 2 images, filter_empty_gt removed 2 '):
        tool_runner(cfg)


def test_bad_validation_file_is_refused_before_training(tmp_path, data_root):
    """The validation set is checked in before_train, not at the first validation; here a
    class-name typo, which mmdet builds into a dataset with shifted labels."""
    train_ann = write_coco(tmp_path / 'coco', 'train', [[1], [2], [3]])
    val_ann = write_coco(tmp_path / 'coco', 'val', [[1], [2], [3]], categories=('a', 'b', 'cc'))
    cfg = on_coco(tiny_cfg('retinanet_focal.py', tmp_path / 'work', 1, batch_size=3), train_ann)
    cfg.val_dataloader = dict(batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler',
                                                                        shuffle=False),
                              dataset=dict(coco_dataset(val_ann), test_mode=True))
    cfg.val_cfg, cfg.val_evaluator = dict(type='ValLoop'), dict(type='CocoMetric', metric='bbox')
    with pytest.raises(ValueError, match=rf"{re.escape(val_ann)} \(val_dataloader.dataset\): "
                       r"metainfo classes \['c'\] are not category names .*'c' -> 'cc'\?"):
        train(cfg)
    assert_nothing_written(tmp_path / 'work', data_root)


def test_cb_loss_num_classes_differs_from_the_head(tmp_path, data_root):
    """Caught before ClassCountsHook would fail with "bbox_label outside [0, 9)"."""
    cfg = tiny_cfg('retinanet_cb_focal.py', tmp_path / 'work', 1)
    cfg.model.bbox_head.loss_cls.num_classes = 9
    with pytest.raises(ValueError, match=r'model.bbox_head.loss_cls \(CBFocalLoss\) has '
                       r'num_classes=9 but model.bbox_head \(RetinaHead\) has num_classes=10'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work', data_root)


# --------------------------------------------------------------------------- config names
@pytest.mark.parametrize('where, name', [('loss', 'NoSuchLoss'), ('weighter', 'NoSuchWeighter'),
                                         ('hook', 'NoSuchHook')])
def test_unknown_component_name_is_a_key_error_naming_it(where, name, tmp_path):
    cfg = tiny_cfg('retinanet_l2rw.py', tmp_path / 'work', 1)
    if where == 'loss':
        cfg.model.bbox_head.loss_cls = dict(type=name)
    elif where == 'weighter':
        cfg.custom_hooks[0].weighter = dict(type=name)
    else:
        cfg.custom_hooks.append(dict(type=name))
    with pytest.raises(KeyError, match=name):
        build_runner(cfg)
    assert_nothing_written(tmp_path / 'work')


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize('config', ['retinanet_focal.py', 'retinanet_ghm.py',
                                    'retinanet_cb_focal.py'])
def test_non_finite_logits_with_check_finite(config, tmp_path, data_root):
    cfg = tiny_cfg(config, tmp_path / 'work', 3, ckpt_interval=1)
    cfg.model.bbox_head.loss_cls.check_finite = True
    cfg = add_hooks(cfg, dict(type='PoisonLogitsHook', at=1))
    with pytest.raises(ValueError, match=r'pred holds non-finite values \(inf or NaN\)'):
        train(cfg)
    # iteration 1 was clean and saved; the failing iteration wrote nothing
    assert sorted(p.name for p in (tmp_path / 'work').glob('*.pth')) == ['iter_1.pth']


@pytest.mark.parametrize('change, message', [
    (dict(interval=0), 'interval must be an integer >= 1, got 0'),
    (dict(interval=-2), 'interval must be an integer >= 1, got -2'),
    (dict(interval=1.5), 'interval must be an integer >= 1, got 1.5'),
])
def test_meta_interval_below_one(change, message, tmp_path):
    cfg = tiny_cfg('retinanet_l2rw.py', tmp_path / 'work', 1)
    cfg.custom_hooks[0].update(change)
    with pytest.raises(ValueError, match=message):
        build_runner(cfg)
    assert_nothing_written(tmp_path / 'work')


@pytest.mark.parametrize('config, key, value, message', [
    ('retinanet_cb_focal.py', 'beta', 1.0, r'beta must be in \[0, 1\), got 1.0'),
    ('retinanet_cb_focal.py', 'beta', -0.1, r'beta must be in \[0, 1\), got -0.1'),
    ('retinanet_ghm.py', 'momentum', 1.0, r'momentum must be in \[0, 1\), got 1.0'),
])
def test_loss_parameter_outside_its_range(config, key, value, message, tmp_path):
    cfg = tiny_cfg(config, tmp_path / 'work', 1)
    cfg.model.bbox_head.loss_cls[key] = value
    with pytest.raises(ValueError, match=message):
        build_runner(cfg)
    assert_nothing_written(tmp_path / 'work')


@pytest.mark.parametrize('key, value, message', [
    ('ema', 1.0, r'ema decay must be in \[0, 1\), got 1.0'),
    ('percentile', 1.0, r'percentile must be in \(0, 1\), got 1.0'),
])
def test_mentornet_parameter_outside_its_range(key, value, message, tmp_path):
    cfg = tiny_cfg('retinanet_mentornet.py', tmp_path / 'work', 1)
    cfg.custom_hooks[0].weighter[key] = value
    with pytest.raises(ValueError, match=message):
        build_runner(cfg)


# --------------------------------------------------------------------------- files
def test_missing_annotation_file(tmp_path, data_root):
    missing = str(tmp_path / 'coco' / 'nope.json')
    cfg = on_coco(tiny_cfg('retinanet_focal.py', tmp_path / 'work', 1), missing)
    with pytest.raises(FileNotFoundError, match='nope.json'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work')


def test_missing_image_file(tmp_path, data_root):
    ann = write_coco(tmp_path / 'coco', 'train', [[1], [2], [3]], write_images=False)
    cfg = on_coco(tiny_cfg('retinanet_focal.py', tmp_path / 'work', 1, batch_size=3), ann)
    with pytest.raises(FileNotFoundError, match=r'train_\d\.png'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work')


def test_embedded_dataset_folder_without_a_benchmark(tmp_path, data_root):
    cfg = tiny_cfg('retinanet_focal.py', tmp_path / 'work', 1)
    (tmp_path / 'empty').mkdir()
    ds = cfg.train_dataloader.dataset
    ds.pop('benchmark')
    ds.data_root = str(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError, match='holds no embedded benchmark'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work')
    assert not any((tmp_path / 'empty').iterdir())  # nothing generated in the user's folder


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory, data_root):
    work = tmp_path_factory.mktemp('ckpt')
    train(tiny_cfg('retinanet_ghm.py', work, 1))
    return work / 'iter_1.pth'


def _damaged(data: bytes, damage: str) -> bytes:
    rng = np.random.RandomState(0)
    return dict(truncated=data[:len(data) // 2], empty=b'', text=b'not a checkpoint\n',
                garbage=rng.bytes(4096))[damage]


@pytest.mark.parametrize('damage', ['truncated', 'empty', 'text', 'garbage'])
def test_corrupt_checkpoint_on_resume(damage, checkpoint, tmp_path):
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(_damaged(checkpoint.read_bytes(), damage))
    cfg = tiny_cfg('retinanet_ghm.py', tmp_path / 'work', 2)
    cfg.resume, cfg.load_from = True, str(broken)
    with pytest.raises(RuntimeError, match=re.escape(f'checkpoint {broken} is corrupt')):
        train(cfg)
    assert_nothing_written(tmp_path / 'work')


def test_random_bytes_are_reported_as_corrupt_not_untrusted(tmp_path):
    """Random bytes make torch's weights-only unpickler raise IndexError, AssertionError,
    UnpicklingError('Unsupported operand ...'), ...: each must read as a corrupt file, never as
    "needs trust" (which would invite MMREWEIGHT_TRUST_CHECKPOINTS=1 on garbage)."""
    from mmreweight.engine.checkpoint import load_checkpoint_file
    rng = np.random.RandomState(1)
    path = tmp_path / 'random.pth'
    for size in [1, 2, 7, 64, 1000, 5000] * 5:
        path.write_bytes(rng.bytes(size))
        with pytest.raises(RuntimeError, match='is corrupt or truncated'):
            load_checkpoint_file(str(path))


def test_missing_checkpoint_on_resume(tmp_path):
    cfg = tiny_cfg('retinanet_ghm.py', tmp_path / 'work', 2)
    cfg.resume, cfg.load_from = True, str(tmp_path / 'gone.pth')
    with pytest.raises(FileNotFoundError, match='gone.pth'):
        train(cfg)
    assert_nothing_written(tmp_path / 'work')


# --------------------------------------------------------------------------- DDP
WORLD = 2


def _clean_loader_worker(rank, port, loaders, out_dir):
    """One rank: the hook's checks and first clean batch for each clean dataloader config."""
    with gloo_process_group(rank, WORLD, port):
        from mmengine.registry import DefaultScope
        from mmengine.runner import Runner

        from mmreweight.engine.meta_hook import MetaReweightHook
        DefaultScope.get_instance(f'ddp-rank{rank}', scope_name='mmreweight')
        result = {}
        for name, loader_cfg in loaders.items():
            hook = MetaReweightHook(weighter=dict(type='L2RWWeighter'),
                                    clean_dataloader=loader_cfg)
            hook.clean_dataloader = Runner.build_dataloader(loader_cfg, seed=0)
            try:  # what before_train checks, then what the first meta step draws
                hook._check_clean_dataloader(hook.clean_dataloader)
                batch = hook._next_clean()
                result[name] = [s.img_id for s in batch['data_samples']]
            except ValueError as err:
                result[name] = f'ValueError: {err}'
        torch.save(result, os.path.join(out_dir, f'rank{rank}.pth'))


@pytest.fixture(scope='module')
def ddp_clean_streams(tmp_path_factory):
    """The L2RW config's clean dataloader (DefaultSampler, batch 1) on 2 ranks over 1 clean
    image (round_up True and False) and over 2 clean images."""
    tmp = tmp_path_factory.mktemp('ddp')
    one = write_coco(tmp / 'coco', 'one', [[1, 2]])
    two = write_coco(tmp / 'coco', 'two', [[1], [2]])
    base = tiny_cfg('retinanet_l2rw.py', tmp / 'work', 1, batch_size=1)
    base = base.custom_hooks[0].clean_dataloader.to_dict()
    loaders = {}
    for name, ann, round_up in (('one_padded', one, True), ('one_unpadded', one, False),
                                ('two', two, False)):
        loaders[name] = copy.deepcopy(dict(base, dataset=coco_dataset(ann)))
        loaders[name]['sampler']['round_up'] = round_up
    mp.spawn(_clean_loader_worker, args=(free_port(), loaders, str(tmp)), nprocs=WORLD,
             join=True)
    return [torch.load(tmp / f'rank{r}.pth', weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize('case', ['one_padded', 'one_unpadded'])
def test_more_ranks_than_clean_images_is_an_error_on_every_rank(ddp_clean_streams, case):
    """Padding would silently repeat the image; without padding one rank would wait forever
    for a clean batch while the other waits in the meta all-reduce. Every rank raises."""
    for rank in ddp_clean_streams:
        assert rank[case] == ('ValueError: MetaReweightHook: the clean subset has 1 images for 2 '
                              'processes; each process needs clean images of its own (use more '
                              'clean images or fewer processes)')


def test_as_many_clean_images_as_ranks_gives_each_rank_its_own(ddp_clean_streams):
    first, second = (rank['two'] for rank in ddp_clean_streams)
    assert len(first) == len(second) == 1 and first != second
