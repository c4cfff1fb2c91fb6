"""configs/retinanet_label_issues.py: LabelIssueHook flags what tools/find_label_issues.py flags on
the same weights, relabels (or drops) exactly those annotations in the later training batches, and
keeps its flags across a resume."""
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from integration_helpers import REPO, build_runner, find_hook, tiny_cfg
from mmengine.hooks import Hook
from mmengine.structures import InstanceData

from mmdet.structures import DetDataSample
from mmreweight.analysis import label_issues as li
from mmreweight.analysis.diagnostics import AnchorDiagnostics
from mmreweight.engine.label_issue_hook import LabelIssueHook
from mmreweight.registry import HOOKS
from mmreweight.testing.tools import load_tool

NOISY = dict(noise_type='uniform', noise_rate=0.4)
ITERS, SCORED_AT = 6, 3


@HOOKS.register_module(force=True)
class RecordLabelsHook(Hook):
    """The image id, instance labels and number of ignored boxes of every sample the model is
    given."""
    priority = 'LOWEST'  # after LabelIssueHook (NORMAL) has changed the batch

    def __init__(self):
        self.samples, self.ignored, self.marks = [], [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.samples += [(runner.iter + 1, s.img_id, s.gt_instances.labels.tolist())
                         for s in data_batch['data_samples']]
        self.ignored += [len(s.ignored_instances) for s in data_batch['data_samples']]
        self.marks += [s.gt_instances.get('label_issue') for s in data_batch['data_samples']]


def _cfg(work_dir, action='relabel', target_fpr=0.05):
    cfg = tiny_cfg('retinanet_label_issues.py', work_dir, iters=ITERS, ckpt_interval=SCORED_AT,
                   bench=NOISY)
    finder, *others = cfg.custom_hooks  # the config's LabelIssueHook, then its MetaReweightHook
    # a set share of flags (calibration='fpr'): a detector trained for 6 iterations is no basis
    # for the mixture's estimate, and these tests need flags to follow
    cfg.custom_hooks = [dict(finder, score_at=(SCORED_AT / ITERS, ), action=action,
                             calibration='fpr', target_fpr=target_fpr), *others,
                        dict(type='RecordLabelsHook')]
    return cfg


def _given_labels(hook):
    """{image id: [(ann id, given label index)]} in the order the pipeline packs the boxes."""
    index = {c: i for i, c in enumerate(hook._cat_ids)}
    anns = {a['id']: a for a in hook._coco['annotations']}
    return {img: [(a, index[anns[a]['category_id']]) for a in ids]
            for img, ids in hook._ann_ids.items()}


def _train(cfg):
    """(runner, its LabelIssueHook, the given labels, its RecordLabelsHook) after training."""
    runner = build_runner(cfg)
    runner.train()
    hook = find_hook(runner, LabelIssueHook)
    return runner, hook, _given_labels(hook), find_hook(runner, RecordLabelsHook)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp('label_issues')
    runner = build_runner(_cfg(work))
    runner.train()
    return runner, work


def _finder_options():
    """tools/find_label_issues.py's --cfg-options for the training set of ``_cfg``."""
    opts = [f'train_dataloader.dataset.benchmark.{k}={v}' for k, v in NOISY.items()]
    opts += [f'train_dataloader.dataset.benchmark.{k}={v}'
             for k, v in dict(train_images=48, val_images=16, test_images=16,
                              meta_images=16).items()]
    return opts + ['train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
                   'train_dataloader.persistent_workers=False']


def test_flags_are_the_finders_on_the_same_weights(trained, tmp_path):
    runner, work = trained
    hook = find_hook(runner, LabelIssueHook)
    (round_, ) = hook.rounds
    assert round_['iter'] == SCORED_AT and round_['flagged'] == len(hook.flags) > 0
    assert round_['score'] == 'clean_neighbour_margin'  # the config's
    finder = load_tool(REPO / 'tools' / 'find_label_issues.py').main(
        [str(REPO / 'configs' / 'retinanet_focal.py'), str(work / f'iter_{SCORED_AT}.pth'),
         '--out', str(tmp_path), '--score', 'clean_neighbour_margin', '--neighbours',
         str(round_['neighbours']), '--cfg-options', *_finder_options()])
    assert finder['threshold'] == pytest.approx(round_['threshold'], abs=1e-9)
    cat_index = {c: i for i, c in enumerate(hook._cat_ids)}
    assert hook.flags == {r['ann_id']: cat_index[r['suggested_label']]
                          for r in finder['issues'] if r['flagged']}
    written = json.loads((Path(work) / f'label_issues_iter{SCORED_AT}.json').read_text())
    assert {r['ann_id'] for r in written['issues'] if r['flagged']} == set(hook.flags)
    assert written['truth']['flagged'] == len(hook.flags)  # the benchmark records its flips
    # a neighbour score is a difference of two shares of the votes of k (or all) clean boxes
    scores = [r['score'] for r in finder['issues'] if r['score'] is not None]
    k = min(round_['neighbours'], finder['calibration']['clean_annotations_scored'])
    assert all(abs(k * s - round(k * s)) < 1e-9 for s in scores)


@pytest.mark.parametrize('score, calibration', [('margin', 'fpr'), ('margin', 'mixture'),
                                                ('neighbour_margin', 'fpr')])
def test_other_scores_flag_as_the_finder_on_the_same_weights(trained, tmp_path, monkeypatch,
                                                             score, calibration):
    runner, work = trained
    hook = LabelIssueHook(score_at=(SCORED_AT / ITERS, ), score=score, target_fpr=0.2,
                          calibration=calibration, neighbours=5)
    hook.before_train(runner)
    monkeypatch.setattr(runner, '_work_dir', str(tmp_path / 'hook'))  # keep `work` as it was
    (tmp_path / 'hook').mkdir()
    hook._score(runner, ITERS)  # the trained weights: the checkpoint of the last iteration
    (round_, ) = hook.rounds
    assert round_['score'] == score and ('neighbours' in round_) == (score != 'margin')
    assert round_['calibration'] == calibration
    finder = load_tool(REPO / 'tools' / 'find_label_issues.py').main(
        [str(REPO / 'configs' / 'retinanet_focal.py'), str(work / f'iter_{ITERS}.pth'),
         '--out', str(tmp_path / 'tool'), '--score', score, '--target-fpr', '0.2',
         '--calibration', calibration, '--neighbours', '5', '--cfg-options',
         *_finder_options()])
    assert ('neighbours' in finder) == (score != 'margin')
    assert finder['threshold'] == pytest.approx(round_['threshold'], abs=1e-9)
    assert finder['calibration']['calibration'] == calibration
    cat_index = {c: i for i, c in enumerate(hook._cat_ids)}
    assert hook.flags == {r['ann_id']: cat_index[r['suggested_label']]
                          for r in finder['issues'] if r['flagged']}
    # the round file keeps the clean scores: its threshold follows from what it holds
    written = json.loads((tmp_path / 'hook' / f'label_issues_iter{ITERS}.json').read_text())
    again = li.flag_threshold([r['score'] for r in written['issues'] if r['score'] is not None],
                              written['clean_scores'], calibration, 0.2)
    assert again['threshold'] == round_['threshold']
    if calibration == 'fpr':
        assert len(hook.flags) > 0


def _scored_hook(runner, tmp_path, monkeypatch, **kwargs):
    """A LabelIssueHook that has scored the trained weights and its round file; the margin at a
    20% clean false-positive rate (after 6 iterations the clean neighbours flag nothing)."""
    hook = LabelIssueHook(score_at=(SCORED_AT / ITERS, ), score='margin',
                          calibration='fpr', target_fpr=0.2, action='flag', **kwargs)
    hook.before_train(runner)
    work = tmp_path / f'hook{len(list(tmp_path.iterdir()))}'  # one per call
    work.mkdir()
    monkeypatch.setattr(runner, '_work_dir', str(work))  # keep the fixture's work dir as it was
    hook._score(runner, ITERS)
    return hook, json.loads((work / f'label_issues_iter{ITERS}.json').read_text())


def test_relabel_above_relabels_the_surest_flags_and_leaves_the_rest_to_the_action(
        trained, tmp_path, monkeypatch):
    runner, _ = trained
    plain, written = _scored_hook(runner, tmp_path, monkeypatch)
    score = {r['ann_id']: r['score'] for r in written['issues']}
    flagged_scores = sorted(score[a] for a in plain.flags)
    assert flagged_scores[0] < flagged_scores[-1]  # a cut between them leaves both sides
    cut = flagged_scores[len(flagged_scores) // 2]
    hook, round_file = _scored_hook(runner, tmp_path, monkeypatch, relabel_above=cut)
    # the same flags on the same weights, split at the cut (inclusive), suggestions kept
    assert {**hook.flags, **hook.relabels} == plain.flags
    assert set(hook.relabels) == {a for a in plain.flags if score[a] >= cut} != set()
    assert hook.flags and not set(hook.flags) & set(hook.relabels)
    (round_, ) = hook.rounds
    assert round_['flagged'] == len(plain.flags) and round_['relabelled'] == len(hook.relabels)
    truth = {a['id']: a['clean_category_id'] for a in hook._coco['annotations']}
    cat_index = {c: i for i, c in enumerate(hook._cat_ids)}
    assert round_['truth']['relabel_accuracy'] == pytest.approx(
        sum(cat_index[truth[a]] == s for a, s in hook.relabels.items()) / len(hook.relabels))
    assert round_file['relabelled'] == len(hook.relabels)
    # a batch: the relabelled box gets its suggestion and no mark, the other flag a mark
    img_id = next(i for i, ids in hook._ann_ids.items()
                  if any(a in hook.relabels for a in ids))
    ids = hook._ann_ids[img_id]
    given = _given_labels(hook)[img_id]
    sample = DetDataSample(metainfo=dict(img_id=img_id))
    sample.gt_instances = InstanceData(labels=torch.tensor([label for _, label in given]),
                                       bboxes=torch.zeros(len(ids), 4))
    runner.message_hub.update_scalar('train/label_issues_changed', 0)
    hook.before_train_iter(runner, 0, dict(inputs=[None], data_samples=[sample]))
    assert sample.gt_instances.labels.tolist() == [hook.relabels.get(a, label)
                                                   for a, label in given]
    assert sample.gt_instances.label_issue.tolist() == [a in hook.flags for a in ids]
    # the relabels survive a checkpoint
    saved = {}
    hook.before_save_checkpoint(runner, saved)
    restored = LabelIssueHook(score_at=(0.5, ), action='flag', relabel_above=cut)
    restored.after_load_checkpoint(runner, saved)
    assert (restored.flags, restored.relabels) == (hook.flags, hook.relabels)


def test_batches_carry_the_suggested_labels_after_the_scoring_point(trained):
    runner, _ = trained
    hook = find_hook(runner, LabelIssueHook)
    given = _given_labels(hook)
    changed = 0
    for iteration, img_id, labels in find_hook(runner, RecordLabelsHook).samples:
        expected = [hook.flags.get(a, label) if iteration > SCORED_AT else label
                    for a, label in given[img_id]]
        assert labels == expected, (iteration, img_id)
        changed += labels != [label for _, label in given[img_id]]
    assert changed > 0  # the later batches held flagged annotations with another suggestion


@pytest.mark.parametrize('action', ['drop', 'ignore'])
def test_drop_and_ignore_take_the_flagged_boxes_out(tmp_path, action):
    cfg = _cfg(tmp_path, action=action)
    cfg.model.train_cfg.assigner.ignore_iof_thr = 0.5
    _, hook, given, record = _train(cfg)
    removed = 0
    for (iteration, img_id, labels), ignored in zip(record.samples, record.ignored):
        kept = [label for a, label in given[img_id]
                if iteration <= SCORED_AT or a not in hook.flags]
        assert labels == kept
        # the embedded benchmark has no ignored boxes of its own
        assert ignored == (len(given[img_id]) - len(kept) if action == 'ignore' else 0)
        removed += len(given[img_id]) - len(kept)
    assert removed > 0


def test_ignore_needs_an_assigner_that_ignores(tmp_path):
    cfg = _cfg(tmp_path, action='ignore')  # RetinaNet's assigner: ignore_iof_thr=-1
    with pytest.raises(ValueError, match='ignore_iof_thr=-1'):
        build_runner(cfg).train()


@pytest.fixture(scope='module')
def flag_trained(tmp_path_factory):
    return _train(_cfg(tmp_path_factory.mktemp('flag'), action='flag'))  # the recipe's action


def test_flag_marks_the_flagged_boxes_and_the_weighter_drops_their_anchors(flag_trained):
    runner, hook, given, record = flag_trained
    marked = 0
    for (iteration, img_id, labels), marks in zip(record.samples, record.marks):
        assert labels == [label for _, label in given[img_id]]  # labels untouched
        if iteration <= SCORED_AT:
            assert marks is None
        else:
            assert marks.tolist() == [a in hook.flags for a, _ in given[img_id]]
            marked += int(marks.sum())
    assert marked > 0
    logged = runner.message_hub.get_scalar('train/label_issue_anchors').data[0]
    assert logged[:SCORED_AT].tolist() == [0] * SCORED_AT and logged[SCORED_AT:].sum() > 0


def test_diagnostics_weigh_the_batches_with_the_checkpoints_flags(flag_trained, tmp_path):
    runner, hook, _, _ = flag_trained
    assert hook.flags
    diagnostics = AnchorDiagnostics(runner.cfg, str(Path(runner.work_dir) / f'iter_{ITERS}.pth'))
    assert diagnostics.label_issues.flags == hook.flags
    flagged_anchors = 0
    loader = diagnostics.train_loader()  # infinite (iteration-based training): about an epoch
    batches = len(loader.dataset) // runner.cfg.train_dataloader.batch_size
    for data in itertools.islice(loader, batches):
        ann_ids = [a for s in data['data_samples'] for a in hook._ann_ids[s.metainfo['img_id']]]
        out = diagnostics.batch(data)
        pos = out['pos']
        flagged = np.array([a in hook.flags for a in ann_ids])[out['gt_index'][pos]]
        # the weighter's weights, as in training: 0 on the flagged annotations' anchors only
        assert (out['weight'][pos][flagged] == 0).all() and (out['weight'][pos][~flagged] > 0).all()
        flagged_anchors += int(flagged.sum())
    assert flagged_anchors > 0
    # tools/diagnose.py records how many flags its batches were given
    config = tmp_path / 'config.py'
    runner.cfg.dump(str(config))
    load_tool(REPO / 'tools' / 'diagnose.py').main(
        [str(config), str(Path(runner.work_dir) / f'iter_{ITERS}.pth'), '--out',
         str(tmp_path / 'diag'), '--batches', '1'])
    summary = json.loads((tmp_path / 'diag' / 'summary.json').read_text())
    assert (summary['label_issue_flags'], summary['label_issue_relabels']) == (len(hook.flags), 0)


def test_flag_without_the_weighter_is_refused(tmp_path):
    cfg = _cfg(tmp_path, action='flag')
    cfg.custom_hooks = [h for h in cfg.custom_hooks if 'MetaReweightHook' not in h['type']]
    with pytest.raises(ValueError, match='LabelIssueWeighter'):
        build_runner(cfg).train()


def test_a_retrain_acts_on_the_earlier_runs_flags_from_the_first_iteration(trained, tmp_path):
    runner, work = trained
    found = find_hook(runner, LabelIssueHook).flags
    cfg = _cfg(tmp_path, action='flag')
    finder, *others = cfg.custom_hooks
    cfg.custom_hooks = [dict(finder, score_at=(), flags_from=str(work)), *others]
    _, hook, given, record = _train(cfg)
    # read back from the earlier run's label_issues_iter<K>.json, suggestions included
    assert hook.flags == found
    assert [r['iter'] for r in hook.rounds] == [0] and hook.rounds[0]['flagged'] == len(found)
    assert 'truth' in hook.rounds[0]  # the benchmark records its flips
    for (_, img_id, _), marks in zip(record.samples, record.marks):
        assert marks.tolist() == [a in found for a, _ in given[img_id]]
    summary = json.loads((tmp_path / 'label_issues.json').read_text())
    assert summary['rounds'][0]['source'].endswith(f'label_issues_iter{SCORED_AT}.json')


def test_resume_restores_the_flags(trained, tmp_path):
    runner, work = trained
    cfg = _cfg(tmp_path)
    cfg.resume, cfg.load_from = True, str(work / f'iter_{SCORED_AT}.pth')
    resumed = build_runner(cfg)
    resumed.train()
    assert find_hook(resumed, LabelIssueHook).flags == find_hook(runner, LabelIssueHook).flags


def test_resume_past_the_scoring_point_without_flags_is_refused(tmp_path):
    focal = tiny_cfg('retinanet_focal.py', tmp_path / 'focal', iters=SCORED_AT, bench=NOISY)
    build_runner(focal).train()
    cfg = _cfg(tmp_path / 'resumed')
    cfg.resume, cfg.load_from = True, str(tmp_path / 'focal' / f'iter_{SCORED_AT}.pth')
    with pytest.raises(RuntimeError, match='holds no label-issue flags'):
        build_runner(cfg).train()


def test_a_batch_whose_boxes_differ_from_the_file_is_an_error():
    hook = LabelIssueHook()
    hook.flags, hook._ann_ids = {7: 1}, {3: [7, 8]}
    sample = DetDataSample(metainfo=dict(img_id=3))
    sample.gt_instances = InstanceData(labels=torch.tensor([0]), bboxes=torch.zeros(1, 4))
    with pytest.raises(RuntimeError, match='random crop'):
        hook.before_train_iter(None, 0, dict(inputs=[None], data_samples=[sample]))


@pytest.mark.parametrize('kwargs, match', [
    (dict(score_at=()), 'flags_from'), (dict(score_at=(0.5, 1.0)), 'score_at'),
    (dict(action='fix'), 'action'), (dict(target_fpr=1.0), 'target_fpr'),
    (dict(calibration='auto'), 'calibration'),
    (dict(score='loss'), 'score'), (dict(neighbours=0), 'neighbours'),
    (dict(neighbours=2.5), 'neighbours'), (dict(neighbours='many'), 'neighbours'),
    (dict(relabel_above=0.9), "action='relabel' relabels every flag"),
    (dict(action='flag', relabel_above='sure'), 'relabel_above must be a finite score'),
    (dict(action='flag', relabel_above=float('nan')), 'relabel_above must be a finite score'),
    (dict(action='flag', relabel_above=0.9, score_at=(), flags_from='run'), 'score_at is empty')])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LabelIssueHook(**kwargs)
