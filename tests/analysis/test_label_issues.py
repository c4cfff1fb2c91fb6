"""The label-issue finder: its pure functions against hand-computed values, and
tools/find_label_issues.py end to end on the tiny embedded benchmark with 40% uniform noise."""
import copy
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mmreweight.analysis.label_issues import (annotation_scores, calibrate_threshold, clean_coco,
                                              neighbour_scores, neighbour_votes, ranking_metrics,
                                              with_set_scores)
from mmreweight.testing.tools import load_tool

REPO = Path(__file__).resolve().parents[2]
#: the integration tests' tiny benchmark sizes (tests/integration/integration_helpers.py)
TINY = dict(train_images=48, val_images=16, test_images=16, meta_images=16)

LOGIT = math.log(3.0)  # sigmoid(LOGIT) = 0.75, sigmoid(-LOGIT) = 0.25


def test_annotation_scores_by_hand():
    # 3 annotations, 3 classes; anchors 0-1 -> ann 0, anchor 2 -> ann 2, anchor 3 unmatched
    logits = torch.tensor([[LOGIT, -LOGIT, 0.0],      # p = .75 .25 .5
                           [-LOGIT, -LOGIT, LOGIT],   # p = .25 .25 .75
                           [0.0, LOGIT, -LOGIT],      # p = .5  .75 .25
                           [9.0, 9.0, 9.0]])
    gt_index = torch.tensor([0, 0, 2, -1])
    given = torch.tensor([0, 1, 0])
    out = annotation_scores(logits, gt_index, given, score='self_confidence')
    # ann 0: mean p = (.5, .25, .625); given 0 -> 1 - .5; suggested class 2
    # ann 2: mean p = (.5, .75, .25);  given 0 -> 1 - .5; suggested class 1
    assert out['score'][0].item() == pytest.approx(0.5)
    assert math.isnan(out['score'][1].item())
    assert out['score'][2].item() == pytest.approx(0.5)
    assert out['suggested_label'].tolist() == [2, -1, 1]
    assert out['num_anchors'].tolist() == [2, 0, 1]
    margin = annotation_scores(logits, gt_index, given)  # the default
    # ann 0: .625 (class 2) - .5; ann 2: .75 (class 1) - .5
    assert margin['score'][0].item() == pytest.approx(0.125)
    assert margin['score'][2].item() == pytest.approx(0.25)
    assert math.isnan(margin['score'][1].item())
    assert margin['suggested_label'].tolist() == [2, -1, 1]


def test_margin_is_negative_when_the_given_label_is_believed():
    # p = (.75, .25): given 0 -> .25 - .75; given 1 -> .75 - .25
    logits = torch.tensor([[LOGIT, -LOGIT], [LOGIT, -LOGIT]])
    out = annotation_scores(logits, torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert out['score'].tolist() == pytest.approx([-0.5, 0.5])
    single = annotation_scores(torch.tensor([[LOGIT]]), torch.tensor([0]), torch.tensor([0]))
    assert single['score'].item() == pytest.approx(-0.75)  # one class: nothing else to believe


def test_annotation_scores_given_label_agrees():
    args = torch.tensor([[-LOGIT, LOGIT]]), torch.tensor([0]), torch.tensor([1])
    assert annotation_scores(*args, score='self_confidence')['score'].item() == \
        pytest.approx(0.25)
    out = annotation_scores(*args)
    assert out['score'].item() == pytest.approx(-0.5)
    assert out['suggested_label'].tolist() == [1]


def test_annotation_scores_rejects_bad_input():
    with pytest.raises(ValueError, match='gt_index 3'):
        annotation_scores(torch.zeros(1, 2), torch.tensor([3]), torch.tensor([0]))
    with pytest.raises(ValueError, match='given_labels'):
        annotation_scores(torch.zeros(1, 2), torch.tensor([0]), torch.tensor([2]))
    with pytest.raises(ValueError, match='score must be one of'):
        annotation_scores(torch.zeros(1, 2), torch.tensor([0]), torch.tensor([0]), score='loss')


def test_annotation_scores_send_the_set_score_to_neighbour_scores():
    with pytest.raises(ValueError, match='neighbour_scores'):
        annotation_scores(torch.zeros(1, 2), torch.tensor([0]), torch.tensor([0]),
                          score='neighbour_margin')


def test_neighbour_votes_by_hand():
    # references on a line (2 classes): p = (x, 0) with labels 0 0 1 1 at x = 0, 1/4, 3/4, 1
    ref = torch.tensor([[0.0, 0.0], [0.25, 0.0], [0.75, 0.0], [1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[0.625, 0.0]])  # 3/4 is 1/8 away, then 1/4 and 1 both 3/8 away
    assert neighbour_votes(ref, labels, query, k=1)[0].tolist() == [0.0, 1.0]
    assert neighbour_votes(ref, labels, query, k=2)[0].tolist() == [0.5, 0.5]  # tie: index 1
    assert neighbour_votes(ref, labels, query, k=3)[0].tolist() == pytest.approx([1 / 3, 2 / 3])
    # the references themselves, k = 1, without themselves: 0 -> 1/4 (0), 1/4 -> 0 (0),
    # 3/4 -> 1 (1), 1 -> 3/4 (1)
    own = neighbour_votes(ref, labels, ref, k=1, exclude_self=True)
    assert own.tolist() == [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    # k beyond the references asks them all
    assert neighbour_votes(ref, labels, ref[:1], k=10).tolist() == [[0.5, 0.5]]


def _brute_force_votes(ref, labels, queries, k, exclude_self):
    out = np.zeros((len(queries), ref.shape[1]))
    for i, q in enumerate(queries):
        dist = [(np.linalg.norm(q - r), j) for j, r in enumerate(ref)
                if not (exclude_self and j == i)]
        for _, j in sorted(dist)[:k]:
            out[i, labels[j]] += 1.0 / min(k, len(dist))
    return out


@pytest.mark.parametrize('exclude_self', [False, True])
def test_neighbour_votes_against_brute_force(exclude_self):
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(37, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (37, ), generator=gen)
    queries = ref if exclude_self else torch.rand(11, 4, generator=gen, dtype=torch.float64)
    for k in (1, 5, 40):
        votes = neighbour_votes(ref, labels, queries, k=k, exclude_self=exclude_self, chunk=4)
        expected = _brute_force_votes(ref.numpy(), labels.numpy(), queries.numpy(), k,
                                      exclude_self)
        np.testing.assert_allclose(votes.numpy(), expected, atol=1e-12)


def test_neighbour_votes_reject_bad_input():
    ref, labels = torch.zeros(3, 2), torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match='reference_labels'):
        neighbour_votes(ref, labels[:2], ref)
    with pytest.raises(ValueError, match='query_probs'):
        neighbour_votes(ref, labels, torch.zeros(3, 3))
    with pytest.raises(ValueError, match='exclude_self'):
        neighbour_votes(ref, labels, ref[:2], exclude_self=True)
    with pytest.raises(ValueError, match='k must be'):
        neighbour_votes(ref, labels, ref, k=0)
    with pytest.raises(ValueError, match='too few'):
        neighbour_votes(ref[:1], labels[:1], ref[:1], exclude_self=True)


def _records(probs, labels, anchors=None):
    anchors = [1] * len(labels) if anchors is None else anchors
    return {100 + i: dict(image_id=i, given_label=int(y), score=0.0, suggested_label=int(y),
                          num_anchors=n, probs=np.asarray(p, dtype=np.float32))
            for i, (p, y, n) in enumerate(zip(probs, labels, anchors))}


def test_neighbour_scores_find_the_flipped_labels_of_clusters():
    # two tight clusters of 10 annotations each, believed class 0 and class 1; two labels of
    # each cluster flipped, one annotation without anchors
    gen = np.random.default_rng(0)
    probs = np.concatenate([gen.normal([0.8, 0.2], 0.01, (10, 2)),
                            gen.normal([0.2, 0.8], 0.01, (10, 2))])
    labels = np.array([0] * 10 + [1] * 10)
    flipped = [3, 7, 12, 18]
    labels[flipped] = 1 - labels[flipped]
    anchors = [1] * 19 + [0]
    train = _records(probs, labels, anchors)
    out = neighbour_scores(train, k=5)
    for i in range(19):
        rec = out[100 + i]
        # its 5 neighbours lie in its own cluster, where at most 2 of them are flipped
        cluster = 0 if i < 10 else 1
        assert rec['suggested_label'] == cluster
        assert (rec['score'] > 0) == (i in flipped), i
    assert out[119]['score'] == 0.0 and out[119]['suggested_label'] == labels[19]  # kept as was
    assert train[100]['score'] == 0.0  # the input is not changed
    # clean queries are asked of the training annotations, with all k counted
    clean = _records([[0.79, 0.21], [0.21, 0.79]], [0, 0])
    asked = neighbour_scores(train, clean, k=5)
    assert asked[100]['score'] < 0 and asked[101]['score'] > 0
    assert asked[101]['suggested_label'] == 1
    # with_set_scores: the set score scores both, a per-annotation score leaves them
    both = with_set_scores(train, clean, 'neighbour_margin', neighbours=5)
    assert both[0] == out and both[1] == asked
    assert with_set_scores(train, clean, 'margin') == (train, clean)


def test_clean_neighbours_outvote_a_class_whose_training_labels_are_mostly_flipped():
    # pair-flip noise at its worst: a cluster of class-0 boxes with 6 of 10 training labels
    # flipped to 1; the training neighbours vote for the wrong label, the clean subset's for the
    # right one
    gen = np.random.default_rng(0)
    probs = np.concatenate([gen.normal([0.7, 0.3], 0.01, (10, 2)),
                            gen.normal([0.2, 0.8], 0.01, (10, 2))])
    labels = np.array([1] * 6 + [0] * 4 + [1] * 10)
    train = _records(probs, labels)
    clean = _records(np.concatenate([gen.normal([0.7, 0.3], 0.01, (4, 2)),
                                     gen.normal([0.2, 0.8], 0.01, (4, 2))]), [0] * 4 + [1] * 4)
    # a flipped box's 9 training neighbours: the other 9 of its cluster, 5 of them flipped
    by_train = with_set_scores(train, clean, 'neighbour_margin', neighbours=9)[0]
    by_clean, clean_self = with_set_scores(train, clean, 'clean_neighbour_margin', neighbours=3)
    flipped = range(100, 106)
    assert all(by_train[a]['score'] < 0 for a in flipped)  # the noisy majority agrees with them
    assert all(by_clean[a]['score'] == 1.0 and by_clean[a]['suggested_label'] == 0
               for a in flipped)
    assert all(by_clean[a]['score'] == -1.0 for a in set(train) - set(flipped))
    # a clean annotation asks the other three of its class: right, so -1
    assert [r['score'] for r in clean_self.values()] == [-1.0] * 8
    assert clean_self == neighbour_scores(clean, k=3)
    with pytest.raises(ValueError, match='score must be one of'):
        with_set_scores(train, clean, 'loss')


def test_neighbour_scores_margin_by_hand():
    # three annotations at 0, .1, .2 (one class direction), labels 0 1 1; k = 2 without self:
    # ann 0 -> {1, 1}: votes (0, 1), given 0 -> 1 - 0 = 1; ann 1 -> {0, 1}: (.5, .5) -> 0;
    # ann 2 -> {1, 0} (.1 then 0): (.5, .5) -> 0
    train = _records([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0]], [0, 1, 1])
    out = neighbour_scores(train, k=2)
    assert [out[a]['score'] for a in (100, 101, 102)] == pytest.approx([1.0, 0.0, 0.0])
    assert out[100]['suggested_label'] == 1
    with pytest.raises(ValueError, match='nothing to ask'):
        neighbour_scores(_records([[0.0, 0.0]], [0], anchors=[0]))


def brute_force_auc(scores, noisy):
    pairs = [(s1 > s0) + 0.5 * (s1 == s0) for (s1, n1), (s0, n0)
             in itertools.product(zip(scores, noisy), repeat=2) if n1 and not n0]
    return sum(pairs) / len(pairs)


def test_ranking_metrics_by_hand():
    scores = [0.9, 0.8, 0.8, 0.3, 0.1, float('nan')]
    noisy = [True, False, True, False, True, True]
    m = ranking_metrics(scores, noisy)
    # scored: noisy {.9, .8, .1}, clean {.8, .3}; pairs noisy>clean: .9>both (2), .8=.8 (.5),
    # .8>.3 (1), .1 below both (0) -> 3.5 / 6
    assert m['auc'] == pytest.approx(3.5 / 6)
    assert m['auc'] == pytest.approx(brute_force_auc(scores[:5], noisy[:5]))
    # k = 3 noisy scored; top 3 = .9 (noisy), .8 (clean, first in order), .8 (noisy) -> 2 hits
    assert (m['k'], m['unscored'], m['annotations']) == (3, 1, 5)
    assert m['precision_at_k'] == pytest.approx(2 / 3)
    assert m['recall_at_k'] == pytest.approx(2 / 3)


def test_ranking_metrics_auc_random():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40).astype(float)  # many ties
    noisy = rng.random(40) < 0.4
    assert ranking_metrics(scores, noisy)['auc'] == pytest.approx(brute_force_auc(scores, noisy))
    sklearn_metrics = pytest.importorskip('sklearn.metrics')
    assert ranking_metrics(scores, noisy)['auc'] == pytest.approx(
        sklearn_metrics.roc_auc_score(noisy, scores))


def test_calibrate_threshold_known_array():
    clean = np.arange(21) / 20.0  # 0, .05, ..., 1
    assert calibrate_threshold(clean, 0.05) == pytest.approx(0.95)
    assert (clean > calibrate_threshold(clean, 0.05)).mean() <= 0.05
    # 10 scores, fpr .25: quantile .75 -> position 6.75 -> next observed score, index 7
    clean = np.array([0.3, 0.1, 0.7, 0.2, 0.9, 0.5, 0.4, 0.8, 0.6, 0.0])
    assert calibrate_threshold(list(clean) + [float('nan')], 0.25) == pytest.approx(0.7)
    assert calibrate_threshold(clean, 0.0) == pytest.approx(0.9)
    with pytest.raises(ValueError, match='no clean annotation'):
        calibrate_threshold([float('nan')])
    with pytest.raises(ValueError, match='target_fpr'):
        calibrate_threshold(clean, 1.0)


COCO = dict(
    info=dict(description='tiny'),
    images=[dict(id=1, file_name='a.png', width=10, height=10),
            dict(id=2, file_name='b.png', width=10, height=10)],
    categories=[dict(id=5, name='five'), dict(id=7, name='seven')],
    annotations=[dict(id=10, image_id=1, category_id=5, bbox=[0, 0, 2, 2], area=4, iscrowd=0),
                 dict(id=11, image_id=1, category_id=7, bbox=[3, 3, 2, 2], area=4, iscrowd=0),
                 dict(id=12, image_id=2, category_id=5, bbox=[1, 1, 4, 4], area=16, iscrowd=0)])
ISSUES = [dict(ann_id=10, score=0.2, suggested_category_id=5),
          dict(ann_id=11, score=0.9, suggested_category_id=5),
          dict(ann_id=12, score=None, suggested_category_id=None)]


def test_clean_coco_drop():
    original = copy.deepcopy(COCO)
    out = clean_coco(COCO, ISSUES, threshold=0.5, action='drop')
    assert [a['id'] for a in out['annotations']] == [10, 12]
    assert out['annotations'] == [COCO['annotations'][0], COCO['annotations'][2]]
    assert {k: v for k, v in out.items() if k != 'annotations'} == \
        {k: v for k, v in COCO.items() if k != 'annotations'}
    assert COCO == original  # the input is not modified


def test_clean_coco_relabel():
    out = clean_coco(COCO, ISSUES, threshold=0.5, action='relabel')
    expected = copy.deepcopy(COCO)
    expected['annotations'][1]['category_id'] = 5
    assert out == expected
    assert COCO['annotations'][1]['category_id'] == 7
    # the threshold is strict: a score equal to it is not flagged
    assert clean_coco(COCO, ISSUES, threshold=0.9, action='drop') == COCO
    with pytest.raises(ValueError, match='action'):
        clean_coco(COCO, ISSUES, 0.5, action='fix')


def _tool():
    return load_tool(REPO / 'tools' / 'find_label_issues.py')


def test_tool_end_to_end_on_noisy_tiny_benchmark(tmp_path, monkeypatch):
    monkeypatch.setenv('MMREWEIGHT_DATA_ROOT', str(tmp_path / 'data'))
    bench = dict(TINY, noise_type='uniform', noise_rate=0.4)
    opts = ['train_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False']
    opts += [f'train_dataloader.dataset.benchmark.{k}={v}' for k, v in bench.items()]
    tool = _tool()
    # a freshly initialised detector, saved as a checkpoint
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint
    from mmreweight.analysis.diagnostics import AnchorDiagnostics
    cfg = Config.fromfile(str(REPO / 'configs' / 'retinanet_focal.py'))
    model = AnchorDiagnostics(cfg, 'init', seed=0, with_weighter=False).model
    ckpt = tmp_path / 'init.pth'
    save_checkpoint(model.state_dict(), str(ckpt))
    out = tmp_path / 'out'
    tool.main([str(REPO / 'configs' / 'retinanet_focal.py'), str(ckpt), '--out', str(out),
               '--top-k', '4', '--cfg-options', *opts])

    result = json.loads((out / 'label_issues.json').read_text())
    with open(result['train_ann_file']) as f:
        train = json.load(f)
    ann_ids = [a['id'] for a in train['annotations']]
    assert sorted(r['ann_id'] for r in result['issues']) == sorted(ann_ids)  # each once
    assert len(set(r['ann_id'] for r in result['issues'])) == len(ann_ids)
    keys = {'image_id', 'ann_id', 'bbox', 'given_label', 'suggested_label', 'score', 'flagged'}
    cat_ids = {c['id'] for c in train['categories']}
    for rec in result['issues']:
        assert keys <= set(rec)
        assert rec['given_label'] in cat_ids
        if rec['score'] is not None:
            assert -1.0 <= rec['score'] <= 1.0 and rec['suggested_label'] in cat_ids
            assert rec['flagged'] == (rec['score'] > result['threshold'])
    assert sum(a['noisy'] for a in train['annotations']) > 0  # the benchmark flipped labels
    cal = result['calibration']
    assert cal['source'] == "embedded benchmark 'meta' split" and cal['target_fpr'] == 0.05
    assert cal['clean_annotations'] > 0 and cal['clean_flagged_fraction'] <= 0.05
    metrics = result['metrics']
    assert {'auc', 'precision_at_k', 'recall_at_k', 'k'} <= set(metrics)
    assert metrics['k'] == sum(r['noisy'] for r in result['issues'] if r['score'] is not None)
    cleaned = json.loads((out / 'cleaned_train.json').read_text())
    flagged = {r['ann_id'] for r in result['issues'] if r['flagged']}
    assert [a['id'] for a in cleaned['annotations']] == [i for i in ann_ids if i not in flagged]
    assert cleaned['images'] == train['images']
    pytest.importorskip('matplotlib')
    assert (out / 'gallery.png').stat().st_size > 0


def test_tool_names_a_missing_checkpoint(tmp_path):
    with pytest.raises(SystemExit, match='missing.pth does not exist'):
        _tool().main([str(REPO / 'configs' / 'retinanet_focal.py'), str(tmp_path / 'missing.pth'),
                      '--out', str(tmp_path / 'out')])


def test_no_clean_subset_says_how_to_give_one():
    from mmengine.config import Config
    from mmreweight.analysis.label_issues import clean_subset_loader_cfg
    cfg = Config(dict(train_dataloader=dict(batch_size=2, dataset=dict(
        type='CocoDataset', ann_file='train.json', pipeline=[]))))
    with pytest.raises(ValueError, match='--clean-ann-file'):
        clean_subset_loader_cfg(cfg)
    loader, how = clean_subset_loader_cfg(Config(dict(train_dataloader=dict(
        batch_size=2, sampler=dict(type='InfiniteSampler', shuffle=True),
        batch_sampler=dict(type='AspectRatioBatchSampler'),
        dataset=dict(type='mmreweight.EmbeddedDetectionDataset', split='train', pipeline=[])))))
    assert how['source'] == "embedded benchmark 'meta' split"
    assert loader['dataset']['split'] == 'meta' and 'batch_sampler' not in loader
    assert loader['sampler'] == dict(type='DefaultSampler', shuffle=False)


def test_noise_metrics_by_hand():
    from mmreweight.analysis.label_issues import noise_metrics
    cat_ids = [1, 2, 3]
    coco = dict(annotations=[
        dict(id=10, category_id=2, clean_category_id=1, noisy=True),   # flagged, right suggestion
        dict(id=11, category_id=3, clean_category_id=2, noisy=True),   # flagged, wrong suggestion
        dict(id=12, category_id=1, clean_category_id=3, noisy=True),   # missed
        dict(id=13, category_id=1, clean_category_id=1, noisy=False),  # flagged, clean
        dict(id=14, category_id=2, clean_category_id=2, noisy=False),
        dict(id=15, category_id=3, clean_category_id=3, noisy=False)])
    scores = {10: 0.9, 11: 0.8, 12: 0.3, 13: 0.7, 14: 0.1, 15: 0.2}
    suggested = {10: 0, 11: 0, 12: 2, 13: 1, 14: 1, 15: 2}
    scored = {i: dict(score=s, suggested_label=suggested[i]) for i, s in scores.items()}
    out = noise_metrics(scored, coco, cat_ids, threshold=0.5)
    assert out['flagged'] == 3
    assert out['flagged_precision'] == pytest.approx(2 / 3)
    assert out['flagged_recall'] == pytest.approx(2 / 3)
    assert out['clean_flagged_fraction'] == pytest.approx(1 / 3)
    assert out['suggestion_accuracy'] == pytest.approx(1 / 2)  # 10 -> cat 1 right, 11 -> 1 wrong
    # noisy 0.9, 0.8, 0.3 vs clean 0.7, 0.1, 0.2: 8 of 9 pairs ordered right
    assert out['auc'] == pytest.approx(8 / 9)
    assert noise_metrics(scored, dict(annotations=[dict(id=10, category_id=2)]), cat_ids,
                         0.5) is None


def _scored_tiny():
    """Scores of COCO's three annotations as score_dataset returns them (labels are indices
    into the categories 5 and 7): 11 flagged at 0.5, 12 without anchors."""
    return {10: dict(image_id=1, given_label=0, score=0.2, suggested_label=0, num_anchors=3),
            11: dict(image_id=1, given_label=1, score=0.9, suggested_label=0, num_anchors=2),
            12: dict(image_id=2, given_label=0, score=math.nan, suggested_label=-1,
                     num_anchors=0)}


def test_issue_records_use_category_ids_in_file_order():
    from mmreweight.analysis.label_issues import issue_records
    recs = issue_records(COCO, _scored_tiny(), [5, 7], threshold=0.5, classes=['five', 'seven'])
    assert [r['ann_id'] for r in recs] == [10, 11, 12]
    assert [(r['given_label'], r['suggested_label'], r['flagged']) for r in recs] == [
        (5, 5, False), (7, 5, True), (5, None, False)]
    assert recs[1]['given_name'] == 'seven' and recs[1]['suggested_name'] == 'five'
    assert recs[2]['score'] is None and recs[2]['num_anchors'] == 0  # NaN: JSON-safe None
    assert 'noisy' not in recs[0]  # the file records no flips


def _write_round(path, records, threshold=0.5):
    path.write_text(json.dumps(dict(threshold=threshold, issues=records)))
    return path


def test_read_flags_gives_back_the_flags_of_the_records(tmp_path):
    from mmreweight.analysis.label_issues import (flagged_annotations, issue_records,
                                                  read_flags)
    scored = _scored_tiny()
    recs = issue_records(COCO, scored, [5, 7], threshold=0.5)
    path = _write_round(tmp_path / 'label_issues.json', recs)
    flags, summary = read_flags(str(path), COCO, [5, 7])
    assert flags == flagged_annotations(scored, 0.5) == {11: 0}
    assert summary['flagged'] == 1 and summary['threshold'] == 0.5
    assert summary['source'] == str(path) and 'truth' not in summary
    # with the benchmark's record of the flips, the flags are scored against it
    noisy = copy.deepcopy(COCO)
    for ann, flip in zip(noisy['annotations'], (False, True, True)):
        ann.update(noisy=flip, clean_category_id=5)
    _, summary = read_flags(str(path), noisy, [5, 7])
    assert summary['truth']['flagged_precision'] == 1.0
    assert summary['truth']['flagged_recall'] == 0.5  # 12, without anchors, is missed
    assert summary['truth']['suggestion_accuracy'] == 1.0


def test_read_flags_of_a_work_dir_takes_the_latest_scoring_point(tmp_path):
    from mmreweight.analysis.label_issues import issue_file, issue_records, read_flags
    scored = _scored_tiny()
    _write_round(tmp_path / 'label_issues_iter900.json', issue_records(COCO, scored, [5, 7], 0.5))
    latest = _write_round(tmp_path / 'label_issues_iter1200.json',  # 1200 > 900, not by name
                          issue_records(COCO, scored, [5, 7], 0.1))
    (tmp_path / 'label_issues.json').write_text('{}')  # the hook's summary, not a round
    assert issue_file(str(tmp_path)) == str(latest)
    flags, _ = read_flags(str(tmp_path), COCO, [5, 7])
    assert flags == {10: 0, 11: 0}


def test_read_flags_refuses_what_it_cannot_use(tmp_path):
    from mmreweight.analysis.label_issues import issue_records, read_flags
    recs = issue_records(COCO, _scored_tiny(), [5, 7], threshold=0.5)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        read_flags(str(tmp_path / 'missing'), COCO, [5, 7])
    with pytest.raises(FileNotFoundError, match='holds no label_issues_iter'):
        read_flags(str(tmp_path), COCO, [5, 7])
    empty = _write_round(tmp_path / 'empty.json', [])
    with pytest.raises(ValueError, match='holds no label-issue records'):
        read_flags(str(empty), COCO, [5, 7])
    other = copy.deepcopy(COCO)
    other['annotations'] = other['annotations'][:2]
    path = _write_round(tmp_path / 'issues.json', recs)
    with pytest.raises(ValueError, match='another training set'):
        read_flags(str(path), other, [5, 7])
    with pytest.raises(ValueError, match='not one of the categories'):
        read_flags(str(path), COCO, [1, 7])  # category 5 unknown: the flagged suggestion


def test_estimate_noise_rate_by_hand():
    from mmreweight.analysis.label_issues import estimate_noise_rate
    clean = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    # threshold: the 0.8 quantile of the clean scores (next observed: 0.8), so alpha = 1/10
    # (0.9 only); training: 4 of 10 above 0.8 -> f = 0.4, r = (0.4 - 0.1) / 0.9 = 1/3
    train = [0.95, 0.99, 0.85, 0.9, 0.1, 0.2, 0.3, 0.5, float('nan'), 0.7, 0.0]
    out = estimate_noise_rate(train, clean, target_fpr=0.2)
    assert out['threshold'] == 0.8 and out['clean_flagged_fraction'] == pytest.approx(0.1)
    assert out['train_flagged_fraction'] == pytest.approx(0.4)  # the NaN left out
    assert out['noise_rate'] == pytest.approx(1 / 3)
    # fewer flagged than the clean share: clipped at 0, not negative
    assert estimate_noise_rate([0.0] * 5, clean)['noise_rate'] == 0.0
    with pytest.raises(ValueError, match='need scored'):
        estimate_noise_rate([float('nan')], clean)


def test_mixture_threshold_by_hand():
    from mmreweight.analysis.label_issues import mixture_threshold
    clean = [i / 10 for i in range(10)]
    # 60 correct labels scored as the clean subset, 40 mislabelled above all of them
    train = clean * 6 + [2.0] * 40 + [float('nan')]
    out = mixture_threshold(train, clean)
    # at t = 0.9: f = 0.4, alpha = 0 -> r = 0.4 and J = 0.4; at t = 0.8: f = 0.46, alpha = 0.1
    # -> J = 0.46 - 2 * 0.6 * 0.1 = 0.34; at t = 2.0 nothing is flagged, J = 0
    assert out['threshold'] == 0.9
    assert out['noise_rate'] == pytest.approx(0.4)
    assert out['train_flagged_fraction'] == pytest.approx(0.4)
    assert out['clean_flagged_fraction'] == 0.0
    assert out['estimated_precision'] == pytest.approx(1.0)


def test_mixture_threshold_flags_nothing_on_clean_labels():
    from mmreweight.analysis.label_issues import mixture_threshold
    gen = np.random.default_rng(0)
    out = mixture_threshold(gen.normal(size=5000), gen.normal(size=1000))
    assert out['train_flagged_fraction'] < 0.01 and out['noise_rate'] < 0.05


def test_mixture_threshold_is_the_bayes_threshold_of_two_gaussians():
    from mmreweight.analysis.label_issues import mixture_threshold
    gen = np.random.default_rng(1)
    rate, n = 0.4, 40000
    noisy = gen.random(n) < rate
    train = np.where(noisy, gen.normal(1.0, 1.0, n), gen.normal(-1.0, 1.0, n))
    out = mixture_threshold(train, gen.normal(-1.0, 1.0, 8000))
    # flagged where r N(s; 1, 1) > (1 - r) N(s; -1, 1): s > ln((1 - r) / r) / 2
    assert out['threshold'] == pytest.approx(np.log((1 - rate) / rate) / 2, abs=0.15)
    # a lower bound on r: at the clean median, r (P(N(1,1) > -1) - 1/2) / (1/2) = 0.38
    assert 0.36 < out['noise_rate'] <= rate + 0.01
    flagged = train > out['threshold']
    assert out['estimated_precision'] == pytest.approx(noisy[flagged].mean(), abs=0.03)


def test_flag_threshold_and_its_bad_input():
    from mmreweight.analysis.label_issues import flag_threshold, mixture_threshold
    clean, train = [0.1, 0.2, 0.3, 0.9], [0.1, 0.5, 0.95, 0.99]
    fpr = flag_threshold(train, clean, 'fpr', 0.25)
    assert fpr['threshold'] == calibrate_threshold(clean, 0.25)
    assert fpr['clean_flagged_fraction'] == 0.0 and fpr['target_fpr'] == 0.25
    mix = flag_threshold(train, clean, 'mixture')
    assert mix['threshold'] == mixture_threshold(train, clean)['threshold']
    with pytest.raises(ValueError, match='calibration'):
        flag_threshold(train, clean, 'auto')
    with pytest.raises(ValueError, match='need scored'):
        mixture_threshold([float('nan')], clean)
    with pytest.raises(ValueError, match='max_clean_share'):
        mixture_threshold(train, clean, max_clean_share=1.0)
