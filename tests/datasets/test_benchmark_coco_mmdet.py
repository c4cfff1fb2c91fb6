"""The annotation files through pycocotools; the dataset through mmdet's registry and pipeline."""
import contextlib
import io
import os

import numpy as np
import pytest
from benchmark_helpers import NOISY, SMALL, anns_by_image, load_coco
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import mmreweight
from mmreweight.datasets import EmbeddedDetectionDataset, read_class_counts
from mmreweight.registry import DATASETS

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs'),
]


@pytest.fixture(scope='module', autouse=True)
def scope():
    mmreweight.register_all_modules(init_default_scope=True)


def _coco(root, split):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(os.path.join(root, 'annotations', f'{split}.json'))


def test_pycocotools_indexes_the_files(noisy_root):
    raw = load_coco(noisy_root, 'train')
    coco = _coco(noisy_root, 'train')
    classes = [str(d) for d in range(10)]
    assert coco.getCatIds(catNms=classes) == list(range(1, 11))
    assert sorted(coco.getImgIds()) == sorted(im['id'] for im in raw['images'])
    per_image = anns_by_image(raw)
    for img_id in coco.getImgIds()[:10]:
        ann_ids = coco.getAnnIds(imgIds=[img_id])
        assert sorted(ann_ids) == sorted(a['id'] for a in per_image[img_id])
        for ann in coco.loadAnns(ann_ids):
            assert len(ann['bbox']) == 4 and ann['iscrowd'] == 0
    # category index uses the given (noisy) labels
    for cat_id in (1, 5):
        expected = {a['id'] for a in raw['annotations'] if a['category_id'] == cat_id}
        assert set(coco.getAnnIds(catIds=[cat_id])) == expected


def test_cocoeval_scores_the_ground_truth_as_perfect(clean_root):
    gt = _coco(clean_root, 'test')
    dets = [dict(image_id=a['image_id'], category_id=a['category_id'], bbox=a['bbox'], score=1.0)
            for a in gt.dataset['annotations']]
    with contextlib.redirect_stdout(io.StringIO()):
        result = gt.loadRes(dets)
        ev = COCOeval(gt, result, 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]


def test_dataset_builds_from_a_config_and_runs_mmdets_pipeline(noisy_root):
    ds = DATASETS.build(dict(type='EmbeddedDetectionDataset', benchmark=dict(SMALL, **NOISY),
                             split='train', data_root=noisy_root, pipeline=PIPELINE))
    assert isinstance(ds, EmbeddedDetectionDataset)
    assert ds.metainfo['classes'] == tuple(str(d) for d in range(10))
    assert len(ds) == SMALL['train_images']
    raw = load_coco(noisy_root, 'train')
    per_image = anns_by_image(raw)
    for i in (0, 7):
        item = ds[i]
        sample = item['data_samples']
        assert tuple(item['inputs'].shape) == (3, 128, 128)
        anns = per_image[sample.img_id]
        expected = np.array([[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)])
        assert np.array_equal(sample.gt_instances.bboxes.numpy(), expected)
        assert sample.gt_instances.labels.tolist() == [a['category_id'] - 1 for a in anns]
        assert sample.img_path == os.path.join(noisy_root, 'train',
                                               f'{sample.img_id:06d}.png')


def test_instances_carry_true_labels_and_noise_flags(noisy_root):
    ds = EmbeddedDetectionDataset(benchmark=dict(SMALL, **NOISY), split='train',
                                  data_root=noisy_root)
    by_id = {a['id']: a for a in load_coco(noisy_root, 'train')['annotations']}
    instances = [inst for i in range(len(ds)) for inst in ds.get_data_info(i)['instances']]
    assert len(instances) == len(by_id)
    for inst in instances:
        ann = by_id[inst['ann_id']]
        assert inst['bbox_label'] == ann['category_id'] - 1
        assert inst['clean_bbox_label'] == ann['clean_category_id'] - 1
        assert inst['noisy'] == (inst['bbox_label'] != inst['clean_bbox_label'])
        assert inst['source_index'] == ann['source_index']
    assert sum(inst['noisy'] for inst in instances) == sum(a['noisy'] for a in by_id.values())
    assert ds.class_counts().tolist() == list(read_class_counts(noisy_root, 'train').values())
    assert ds.class_counts('clean').tolist() == \
        list(read_class_counts(noisy_root, 'train', labels='clean').values())


def test_clean_label_transforms_reach_the_data_sample(noisy_root):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                dict(type='mmreweight.LoadCleanLabels'),
                dict(type='Resize', scale=(256, 256), keep_ratio=True),
                dict(type='RandomFlip', prob=1.0),
                dict(type='mmreweight.PackDetInputsWithCleanLabels')]
    ds = DATASETS.build(dict(type='EmbeddedDetectionDataset', benchmark=dict(SMALL, **NOISY),
                             split='train', data_root=noisy_root, pipeline=pipeline))
    seen_noisy = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        gt = ds[i]['data_samples'].gt_instances
        assert gt.clean_labels.tolist() == [x['clean_bbox_label'] for x in info['instances']]
        assert gt.noisy.tolist() == [x['noisy'] for x in info['instances']]
        assert gt.noisy.tolist() == (gt.labels != gt.clean_labels).tolist()
        seen_noisy += int(gt.noisy.sum())
    assert seen_noisy > 0


def test_dataset_generates_a_missing_set_under_the_data_root_env(tmp_path, monkeypatch):
    monkeypatch.setenv('MMREWEIGHT_DATA_ROOT', str(tmp_path))
    import mmdet.registry
    cfg = dict(type='mmreweight.EmbeddedDetectionDataset', split='meta', test_mode=True,
               benchmark=dict(source='mnist', seed=5, noise_type='pairflip', noise_rate=0.25,
                              imbalance_ratio=20, **SMALL),
               pipeline=PIPELINE)
    ds = mmdet.registry.DATASETS.build(cfg)  # mmdet's registry reaches ours by scoped name
    name = os.path.basename(ds.benchmark_root)
    assert os.path.dirname(ds.benchmark_root) == str(tmp_path)
    assert name.startswith('mnist-s5-pairflip25-lt20-')
    assert os.listdir(tmp_path) == [name]  # no staging folder left behind
    assert len(ds) == SMALL['meta_images'] and ds.split == 'meta'
    # a second build (e.g. another rank) reuses the set
    mtime = os.path.getmtime(os.path.join(ds.benchmark_root, 'benchmark.json'))
    again = mmdet.registry.DATASETS.build(dict(cfg, split='val'))
    assert again.benchmark_root == ds.benchmark_root
    assert os.path.getmtime(os.path.join(ds.benchmark_root, 'benchmark.json')) == mtime


def test_dataset_reads_a_generated_set_from_data_root_alone(clean_root):
    ds = EmbeddedDetectionDataset(split='test', data_root=clean_root, test_mode=True)
    assert len(ds) == SMALL['test_images']
    assert ds.benchmark_info['params']['seed'] == 0


def test_dataset_rejects_conflicting_arguments(clean_root, tmp_path):
    with pytest.raises(ValueError, match='ann_file'):
        EmbeddedDetectionDataset(data_root=clean_root, ann_file='x.json')
    with pytest.raises(ValueError, match='split'):
        EmbeddedDetectionDataset(data_root=clean_root, split='training')
    with pytest.raises(ValueError, match='benchmark=dict'):
        EmbeddedDetectionDataset()
    with pytest.raises(FileNotFoundError, match='no embedded benchmark'):
        EmbeddedDetectionDataset(data_root=str(tmp_path))
    with pytest.raises(FileExistsError, match='other parameters'):
        EmbeddedDetectionDataset(benchmark=dict(SMALL, seed=1), data_root=clean_root)
    with pytest.raises(ValueError, match='not in the benchmark'):
        EmbeddedDetectionDataset(data_root=clean_root, metainfo=dict(classes=('cat',)))


def test_metainfo_may_select_a_subset_of_classes(noisy_root):
    ds = EmbeddedDetectionDataset(data_root=noisy_root, split='train',
                                  metainfo=dict(classes=('3', '7')))
    instances = [x for i in range(len(ds)) for x in ds.get_data_info(i)['instances']]
    raw = load_coco(noisy_root, 'train')['annotations']
    assert len(instances) == sum(a['category_id'] in (4, 8) for a in raw)
    assert {x['bbox_label'] for x in instances} == {0, 1}
    # a true class outside the subset is -1
    for x in instances:
        assert x['clean_bbox_label'] in (-1, 0, 1)
        assert x['noisy'] == (x['clean_bbox_label'] != x['bbox_label'])
