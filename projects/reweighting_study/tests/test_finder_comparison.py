"""The finder comparison: folds, the conversion to cleanlab's formats (checked by what cleanlab
makes of hand-built detections), the metrics, and tools/compare_finders.py on a tiny benchmark."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reweighting_study.finder_comparison import (FINDERS, cleanlab_labels,
                                                 cleanlab_mislabel_scores, cleanlab_prediction,
                                                 compare, fold_indices, xywh_to_xyxy)

PROJECT = Path(__file__).resolve().parents[1]
REPO = PROJECT.parents[1]


def test_folds_partition_the_images_and_follow_the_seed():
    folds = fold_indices(11, 3, seed=0)
    assert sorted(i for f in folds for i in f) == list(range(11))
    assert sorted(len(f) for f in folds) == [3, 4, 4]
    assert folds == fold_indices(11, 3, seed=0) != fold_indices(11, 3, seed=1)
    with pytest.raises(ValueError, match='folds'):
        fold_indices(3, 1, seed=0)


def test_labels_and_predictions_in_cleanlabs_format():
    coco = dict(annotations=[dict(id=5, bbox=[10, 20, 30, 40], category_id=7),
                             dict(id=6, bbox=[0, 0, 5, 5], category_id=3)])
    (labels, ) = cleanlab_labels([[6, 5]], coco, cat_ids=[3, 7])
    np.testing.assert_array_equal(labels['bboxes'], [[0, 0, 5, 5], [10, 20, 40, 60]])
    np.testing.assert_array_equal(labels['labels'], [0, 1])
    pred = cleanlab_prediction(np.array([[1, 2, 3, 4], [5, 6, 7, 8]]), np.array([0.9, 0.2]),
                               np.array([2, 0]), num_classes=3)
    assert [p.shape for p in pred] == [(1, 5), (0, 5), (1, 5)]
    np.testing.assert_allclose(pred[2], [[1, 2, 3, 4, 0.9]])
    assert xywh_to_xyxy([1, 2, 3, 4]) == [1.0, 2.0, 4.0, 6.0]


def test_cleanlab_scores_a_box_whose_detection_has_another_class_as_mislabelled():
    pytest.importorskip('cleanlab')
    # two labelled boxes of class 0; the detector finds both, the second as class 1
    boxes = np.array([[10.0, 10.0, 40.0, 40.0], [70.0, 70.0, 100.0, 100.0]])
    labels = [dict(bboxes=boxes.astype(np.float32), labels=np.array([0, 0]))]

    def scores(prob, threshold=None):
        pred = cleanlab_prediction(boxes, np.array([0.99, prob]), np.array([0, 1]), 2)
        return cleanlab_mislabel_scores(labels, [pred], threshold)[0]

    agreeing, swapped = scores(0.99)
    assert swapped > agreeing
    # below cleanlab's default probability threshold (0.95) the other class is not counted
    agreeing, unsure = scores(0.9)
    assert unsure == agreeing
    assert scores(0.9, threshold=0.5)[1] > agreeing


def test_compare_uses_the_annotations_every_finder_scored():
    coco = dict(annotations=[dict(id=i, noisy=i < 2) for i in range(5)])
    scores = dict(a={0: 0.9, 1: 0.2, 2: 0.5, 3: 0.1, 4: 0.3},
                  b={0: 0.9, 1: 0.8, 2: 0.1, 3: float('nan')})
    out = compare(scores, coco)
    # common: 0, 1, 2 (3 is NaN for b, 4 missing); noisy 0, 1 vs clean 2
    assert out['a']['annotations'] == out['b']['annotations'] == 3
    assert out['a']['auc'] == pytest.approx(0.5) and out['b']['auc'] == pytest.approx(1.0)


@pytest.mark.slow
def test_tool_compares_both_finders_on_a_tiny_benchmark(tmp_path):
    pytest.importorskip('cleanlab')
    env = dict(os.environ, MMREWEIGHT_DATA_ROOT=str(tmp_path / 'data'), PYTHONWARNINGS='ignore')
    proc = subprocess.run(
        [sys.executable, str(PROJECT / 'tools' / 'compare_finders.py'), '--out', str(tmp_path),
         '--sources', 'mnist', '--conditions', 'uniform40', '--seeds', '1', '--iters', '2',
         '--benchmark', 'train_images=24', 'val_images=8', 'test_images=8', 'meta_images=8'],
        cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / 'mnist-uniform40-s0' / 'comparison.json').read_text())
    train = json.loads(next((tmp_path / 'data').rglob('annotations/train.json')).read_text())
    noisy = sum(a['noisy'] for a in train['annotations'])
    assert set(result['metrics']) == set(FINDERS)
    for finder in FINDERS:
        m = result['metrics'][finder]
        assert m['annotations'] == len(train['annotations']) and m['noisy'] == noisy > 0
        assert 0.0 <= m['auc'] <= 1.0
    from mmengine.config import Config
    trained_on = [set(Config.fromfile(str(tmp_path / 'mnist-uniform40-s0' / f'fold{k}' /
                                          'config.py')).train_dataloader.dataset.indices)
                  for k in range(2)]
    assert not trained_on[0] & trained_on[1]  # each fold's images are held out of the other
    assert len(trained_on[0] | trained_on[1]) == len(train['images'])
