"""Find the mislabelled training annotations during training (or take them from an earlier run) and
leave their labels out of the classification loss, ignore, relabel or drop them, with the threshold
calibrated on a held-out clean subset (:mod:`mmreweight.analysis.label_issues`)."""
import json
import math
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from mmengine.dist import all_gather_object, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.structures import InstanceData

from mmreweight.analysis import label_issues as li
from mmreweight.registry import HOOKS
from mmreweight.weighting import LabelIssueWeighter
from .meta_hook import MetaReweightHook

CHECKPOINT_KEY = 'label_issues'
SUMMARY_FILE = 'label_issues.json'
#: what the hook can do to a flagged annotation in the training batches
HOOK_ACTIONS = ('flag', 'ignore') + li.ACTIONS


def check_assigner_ignores(detector) -> None:
    """Raise unless the detector's assigner leaves anchors overlapping ignored boxes out of the
    loss; otherwise an ignored box would silently be trained as background."""
    train_cfg = getattr(detector.bbox_head, 'train_cfg', None) or {}
    assigner = train_cfg.get('assigner', {})
    thr = assigner.get('ignore_iof_thr')
    if thr is None or thr <= 0:
        raise ValueError(
            f"LabelIssueHook(action='ignore') needs an assigner that honours ignored boxes; "
            f"{assigner.get('type', 'the assigner')} has ignore_iof_thr={thr}. Set "
            "model.train_cfg.assigner.ignore_iof_thr (e.g. 0.5, a MaxIoUAssigner) or use "
            "action='relabel'.")


def check_flags_are_read(runner) -> None:
    """Raise unless a MetaReweightHook with a :class:`~mmreweight.weighting.LabelIssueWeighter`
    reads the marks of ``action='flag'``; otherwise they would change nothing."""
    if not any(isinstance(h, MetaReweightHook) and isinstance(h.weighter, LabelIssueWeighter)
               for h in runner.hooks):
        raise ValueError(
            "LabelIssueHook(action='flag') marks annotations for mmreweight.LabelIssueWeighter, "
            'but no MetaReweightHook uses one: add custom_hooks += [dict(type='
            "'mmreweight.MetaReweightHook', weighter=dict(type='mmreweight.LabelIssueWeighter'))] "
            "with model.bbox_head.type='mmreweight.ReweightRetinaHead' "
            '(configs/retinanet_label_issues.py)')


def _split(instances: InstanceData, hits: List[int]):
    """(the instances but ``hits``, the instances ``hits``)."""
    keep = torch.ones(len(instances), dtype=torch.bool)
    keep[hits] = False
    return instances[keep], instances[~keep]


def _move_to_ignored(sample, hits: List[int]) -> None:
    """Move the instances ``hits`` of ``sample.gt_instances`` to its ``ignored_instances``
    (keeping the fields both hold)."""
    kept, moved = _split(sample.gt_instances, hits)
    ignored = sample.get('ignored_instances')
    if ignored is None:
        sample.ignored_instances = InstanceData(bboxes=moved.bboxes, labels=moved.labels)
    else:
        common = [k for k in moved.keys() if k in ignored.keys()]
        sample.ignored_instances = InstanceData.cat(
            [InstanceData(**{k: x.get(k) for k in common}) for x in (ignored, moved)])
    sample.gt_instances = kept


def _gathered(local: Dict[int, Any]) -> Dict[int, Any]:
    """The union of every rank's scores (each rank scored its shard of the images)."""
    if get_world_size() == 1:
        return local
    merged: Dict[int, Any] = {}
    for part in all_gather_object(local):
        merged.update(part)
    return merged


@HOOKS.register_module()
class LabelIssueHook(Hook):
    """Scores every training annotation at the given points of training and, from each point
    on, acts on the annotations it flags in every training batch (``action``); with
    ``flags_from``, acts from the first iteration on the flags of an earlier run (clean and
    retrain).

    At each point the detector, in eval mode, scores the training set and the clean subset
    (:func:`~mmreweight.analysis.label_issues.score_dataset`: by default the margin by which the
    detector's mean probability of another class, over the annotation's positive anchors,
    exceeds the given label's); the threshold comes from the clean subset's scores
    (``calibration``), so neither the noise type nor its rate is used. Each
    point replaces the previous flags: the given labels are always the ones scored, by a detector
    trained on fewer wrong labels than the one before.

    Args:
        score_at: the points, as fractions of ``max_iters`` in (0, 1); may be empty with
            ``flags_from``.
        action: ``'flag'`` marks a flagged annotation (``gt_instances.label_issue``) for
            :class:`~mmreweight.weighting.LabelIssueWeighter`, which leaves its anchors out of
            the classification loss and keeps its box (needs ``mmreweight.ReweightRetinaHead``
            and a MetaReweightHook with that weighter; checked before training);
            ``'ignore'`` moves it to the batch's ignored instances: the
            assigner leaves the anchors that overlap it out of the loss (needs an assigner with
            ``ignore_iof_thr > 0``; checked before training), so the object is learned neither
            as its given class nor as background; ``'relabel'`` gives it its suggested label
            (the class the detector believes); ``'drop'`` removes it (its object becomes
            background, as in the cleaned COCO file of ``tools/find_label_issues.py``).
        calibration: ``'fpr'`` sets the threshold at the ``1 − target_fpr`` quantile of the
            clean subset's scores, so it flags about that share of the correct labels, noisy
            data or not; ``'mixture'`` reads the training scores as a mixture of the clean
            subset's and the mislabelled ones' and flags where an annotation is estimated more
            likely mislabelled than not, and nothing on clean data
            (:func:`~mmreweight.analysis.label_issues.mixture_threshold`).
        target_fpr: the share of the clean subset's annotations the threshold may flag
            (``calibration='fpr'``).
        score: ``'margin'``, ``'self_confidence'``
            (:func:`~mmreweight.analysis.label_issues.annotation_scores`) or
            ``'neighbour_margin'`` (the vote of each annotation's ``neighbours`` nearest training
            annotations, :func:`~mmreweight.analysis.label_issues.neighbour_scores`) or
            ``'clean_neighbour_margin'`` (the vote of its nearest clean-subset annotations,
            whose labels are right: the score for class-dependent noise).
        neighbours: the neighbours a neighbour score asks.
        relabel_above: with ``action`` ``'flag'``, ``'ignore'`` or ``'drop'``, a flagged annotation
            scoring at least this much at a scoring point gets its suggested label instead
            and trains as any other; the rest get ``action``. Why: a wrong suggestion turns
            a flip into another flip, so only the flags the score is surest of are worth
            relabelling (with ``'clean_neighbour_margin'`` and 20 neighbours, 0.9 asks the
            suggestion to outvote the given label by 18 of the 20); leaving a label out
            gives up its object's class, relabelling it right gives it back. None (default)
            relabels nothing.
        clean_dataloader: the clean subset's dataloader config; by default the
            MetaReweightHook's ``clean_dataloader``, else the embedded benchmark's ``meta`` split
            (:func:`~mmreweight.analysis.label_issues.clean_subset_loader_cfg`).
        flags_from: the flags to act on from iteration 0: the work dir of an earlier run with
            this hook (its latest ``label_issues_iter<K>.json``), such a file, or the
            ``label_issues.json`` of ``tools/find_label_issues.py``
            (:func:`~mmreweight.analysis.label_issues.read_flags`); a scoring point replaces
            them. Flags restored from a checkpoint take precedence (a resumed run goes on with
            the flags it had).

    The flags are saved in checkpoints (``label_issues``), and each point writes
    ``<work_dir>/label_issues_iter<K>.json`` (one record per training annotation,
    :func:`~mmreweight.analysis.label_issues.issue_records`) and appends its summary to
    ``<work_dir>/label_issues.json`` and the visualizer (flags read from ``flags_from`` are
    the round of iteration 0). The training pipeline must keep every box in order (no random
    crop or mosaic); a batch whose boxes do not match the annotation file is an error. Needs an
    anchor-head detector with a sigmoid classifier (RetinaNet) and a COCO-style training set.
    """

    priority = 'NORMAL'  # before the CheckpointHook (VERY_LOW) saves the flags of this iteration

    def __init__(self, score_at: Sequence[float] = (0.2, 0.4, 0.6), action: str = 'relabel',
                 target_fpr: float = 0.05, score: str = 'margin', calibration: str = 'fpr',
                 neighbours: int = li.DEFAULT_NEIGHBOURS,
                 relabel_above: Optional[float] = None,
                 clean_dataloader: Optional[dict] = None,
                 flags_from: Optional[str] = None) -> None:
        score_at = [float(f) for f in score_at]
        if any(not 0.0 < f < 1.0 for f in score_at):
            raise ValueError(f'score_at must be fractions of training in (0, 1), got {score_at}')
        if not score_at and not flags_from:
            raise ValueError('LabelIssueHook has nothing to act on: give score_at (fractions of '
                             'training at which to score the annotations) or flags_from (the '
                             'work dir of an earlier run with LabelIssueHook, or the '
                             'label_issues.json of tools/find_label_issues.py)')
        if action not in HOOK_ACTIONS:
            raise ValueError(f'action must be one of {HOOK_ACTIONS}, got {action!r}')
        if score not in li.SCORES:
            raise ValueError(f'score must be one of {li.SCORES}, got {score!r}')
        if not 0.0 <= float(target_fpr) < 1.0:
            raise ValueError(f'target_fpr must lie in [0, 1), got {target_fpr!r}')
        if calibration not in li.CALIBRATIONS:
            raise ValueError(f'calibration must be one of {li.CALIBRATIONS}, got {calibration!r}')
        if isinstance(neighbours, bool) or not isinstance(neighbours, (int, float)) \
                or int(neighbours) != neighbours or neighbours < 1:
            raise ValueError(f'neighbours must be a positive whole number, got {neighbours!r}')
        if relabel_above is not None:
            if action == 'relabel':
                raise ValueError("relabel_above picks the flags to relabel among those that "
                                 "action acts on, but action='relabel' relabels every flag: "
                                 "leave relabel_above out or choose action 'flag', 'ignore' or "
                                 "'drop'")
            if not score_at:
                raise ValueError('relabel_above applies to the scoring points, and score_at '
                                 'is empty: flags read from flags_from carry no relabels; '
                                 'give score_at or leave relabel_above out')
            if isinstance(relabel_above, bool) or not isinstance(relabel_above, (int, float)) \
                    or not math.isfinite(relabel_above):
                raise ValueError(f'relabel_above must be a finite score, got {relabel_above!r}')
        self.score_at = sorted(score_at)
        self.action = action
        self.target_fpr = float(target_fpr)
        self.calibration = calibration
        self.score = score
        self.neighbours = int(neighbours)
        self.relabel_above = None if relabel_above is None else float(relabel_above)
        self.clean_dataloader = clean_dataloader
        self.flags_from = flags_from
        self.flags: Dict[int, int] = {}  # ann_id -> suggested label index
        self.relabels: Dict[int, int] = {}  # flagged ann_id -> label, given by relabel_above
        self.rounds: List[Dict[str, Any]] = []
        self._restored = False

    # ------------------------------------------------------------------ set-up
    def _score_iters(self, runner) -> List[int]:
        return sorted({max(1, round(f * runner.max_iters)) for f in self.score_at})

    def bind_dataset(self, dataset) -> None:
        """Read the training set's annotation file: the annotations scored and acted on."""
        if not getattr(dataset, 'ann_file', None) or not hasattr(dataset, 'cat_ids'):
            raise ValueError(f'LabelIssueHook needs a COCO-style training set with an ann_file; '
                             f'{type(dataset).__name__} has none (a wrapped dataset such as '
                             'RepeatDataset is not supported)')
        self._coco = li.load_coco(dataset.ann_file)
        self._cat_ids = list(dataset.cat_ids)
        self._ann_ids = li.ann_ids_by_image(dataset, self._coco)

    def before_train(self, runner) -> None:
        self.bind_dataset(runner.train_dataloader.dataset)
        # the checks come first: a misconfigured run fails before any scoring pass
        if self.action == 'ignore':
            check_assigner_ignores(runner.model.module if is_model_wrapper(runner.model)
                                   else runner.model)
        elif self.action == 'flag':
            check_flags_are_read(runner)
        if self.flags_from and not self._restored:
            self.flags, summary = li.read_flags(self.flags_from, self._coco, self._cat_ids)
            self.rounds = [dict(summary, iter=0)]
            self._write_summary(runner)
            runner.logger.info(f'LabelIssueHook: {len(self.flags)} flags from {summary["source"]}')
        if self.score_at:
            self._build_loaders(runner)
            runner.logger.info(f'LabelIssueHook: scores the training annotations at '
                               f'iterations {self._score_iters(runner)}')
        runner.logger.info(f'LabelIssueHook: action on the flagged annotations: {self.action!r}')

    def _build_loaders(self, runner) -> None:
        loader_cfg = li.sequential_loader_cfg(runner.cfg.train_dataloader)
        if self.clean_dataloader is not None:
            clean_cfg = li.sequential_loader_cfg(self.clean_dataloader)
        else:  # fails now, not after a third of training, when there is no clean subset
            clean_cfg, _ = li.clean_subset_loader_cfg(runner.cfg)
        seed = runner.seed
        self._loaders = [runner.build_dataloader(cfg, seed=seed)
                         for cfg in (loader_cfg, clean_cfg)]
        self._clean_coco = li.load_coco(self._loaders[1].dataset.ann_file)

    # ------------------------------------------------------------------ scoring
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 in self._score_iters(runner):
            self._score(runner, runner.iter + 1)

    @torch.no_grad()
    def _score(self, runner, iteration: int) -> None:
        detector = runner.model.module if is_model_wrapper(runner.model) else runner.model
        was_training = detector.training
        detector.eval()  # running BN statistics: each image scored on its own
        try:
            train = _gathered(li.score_dataset(detector, self._loaders[0], self._coco,
                                               score=self.score))
            clean = _gathered(li.score_dataset(detector, self._loaders[1], self._clean_coco,
                                               score=self.score))
        finally:
            detector.train(was_training)
        train, clean = li.with_set_scores(train, clean, self.score, self.neighbours)
        clean_scores = sorted(r['score'] for r in clean.values() if math.isfinite(r['score']))
        calibrated = li.flag_threshold([r['score'] for r in train.values()], clean_scores,
                                       self.calibration, self.target_fpr)
        threshold = calibrated.pop('threshold')
        calibrated.pop('rule')
        flagged = li.flagged_annotations(train, threshold)
        self.relabels = {a: label for a, label in flagged.items()
                         if self.relabel_above is not None
                         and train[a]['score'] >= self.relabel_above}
        self.flags = {a: s for a, s in flagged.items() if a not in self.relabels}
        summary = dict(iter=iteration, score=self.score,
                       **({'neighbours': self.neighbours} if self.score not in
                          li.ANNOTATION_SCORES else {}),
                       threshold=threshold, annotations=len(train), flagged=len(flagged),
                       clean_annotations=len(clean), **calibrated)
        if self.relabel_above is not None:
            summary.update(relabel_above=self.relabel_above, relabelled=len(self.relabels))
        truth = li.noise_metrics(train, self._coco, self._cat_ids, threshold)
        if truth is not None:
            if self.relabel_above is not None:
                truth['relabel_accuracy'] = li.label_accuracy(self.relabels, self._coco,
                                                              self._cat_ids)
            summary['truth'] = truth
        self.rounds.append(summary)
        self._report(runner, iteration, train, summary, clean_scores)

    def _report(self, runner, iteration: int, train: Mapping[int, Mapping[str, Any]],
                summary: Dict[str, Any], clean_scores: List[float]) -> None:
        share = summary['flagged'] / max(summary['annotations'], 1)
        text = (f'LabelIssueHook at iteration {iteration}: threshold {summary["threshold"]:.4f} '
                f'flags {summary["flagged"]} of {summary["annotations"]} annotations '
                f'({100 * share:.1f}%)')
        scalars = dict(flagged_fraction=share, threshold=summary['threshold'])
        truth = summary.get('truth')
        if truth is not None:
            text += (f'; against the recorded flips: AUC {truth["auc"]:.3f}, precision '
                     f'{truth["flagged_precision"]:.3f}, recall {truth["flagged_recall"]:.3f}')
            scalars.update(auc=truth['auc'], precision=truth['flagged_precision'],
                           recall=truth['flagged_recall'])
        runner.logger.info(text)
        runner.visualizer.add_scalars({f'label_issues/{k}': v for k, v in scalars.items()},
                                      step=iteration)
        if not is_main_process():
            return
        records = li.issue_records(self._coco, train, self._cat_ids, summary['threshold'])
        # the clean scores too, so that another threshold can be tried on this point afterwards
        with open(osp.join(runner.work_dir, li.ROUND_FILE.format(iteration)), 'w') as f:
            json.dump(dict(summary, issues=records, clean_scores=clean_scores), f)
        self._write_summary(runner)

    def _write_summary(self, runner) -> None:
        if is_main_process():
            with open(osp.join(runner.work_dir, SUMMARY_FILE), 'w') as f:
                json.dump(dict(action=self.action, rounds=self.rounds), f, indent=1)

    # ------------------------------------------------------------------ acting
    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not (self.flags or self.relabels) or data_batch is None:
            return
        changed = self.act_on(data_batch['data_samples'])
        runner.message_hub.update_scalar('train/label_issues_changed', changed)

    def act_on(self, data_samples) -> int:
        """Do to the flagged annotations of ``data_samples`` what training does (``action``,
        ``relabel_above``), in place; needs :meth:`bind_dataset`. Returns how many annotations
        it changed."""
        changed = 0
        for sample in data_samples:
            img_id = sample.metainfo.get('img_id')
            gt = sample.gt_instances
            ann_ids = self._ann_ids.get(img_id)
            if ann_ids is None or len(ann_ids) != len(gt):
                raise RuntimeError(
                    f'LabelIssueHook: image {img_id} has {len(gt)} boxes in the batch and '
                    f'{None if ann_ids is None else len(ann_ids)} in the annotation file; remove '
                    'the transforms that drop, add or reorder boxes (random crop, mosaic) from '
                    'the training pipeline')
            relabelled = [j for j, ann_id in enumerate(ann_ids) if ann_id in self.relabels]
            if relabelled:
                labels = gt.labels.clone()
                labels[relabelled] = labels.new_tensor([self.relabels[ann_ids[j]]
                                                        for j in relabelled])
                gt.labels = labels
            hits = [j for j, ann_id in enumerate(ann_ids) if ann_id in self.flags]
            changed += len(hits) + len(relabelled)
            if self.action == 'flag':  # on every sample once flags exist: explicit 'none' too
                marks = torch.zeros(len(gt), dtype=torch.bool)
                marks[hits] = True
                gt.label_issue = marks
            elif not hits:
                continue
            elif self.action == 'ignore':
                _move_to_ignored(sample, hits)
            elif self.action == 'relabel':
                labels = gt.labels.clone()
                labels[hits] = labels.new_tensor([self.flags[ann_ids[j]] for j in hits])
                gt.labels = labels
            else:  # drop
                sample.gt_instances = _split(gt, hits)[0]
        return changed

    # ------------------------------------------------------------------ state
    def load_state(self, checkpoint: Mapping[str, Any]) -> bool:
        """Take the flags, relabels and rounds a checkpoint saved; False if it holds none."""
        saved = checkpoint.get(CHECKPOINT_KEY)
        if saved is None:
            return False
        self.flags = {int(a): int(label) for a, label in saved['flags']}
        self.relabels = {int(a): int(label) for a, label in saved.get('relabels', ())}
        self.rounds = list(saved['rounds'])
        self._restored = True
        return True

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = dict(action=self.action, rounds=self.rounds,
                                          flags=sorted(self.flags.items()),
                                          relabels=sorted(self.relabels.items()))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.load_state(checkpoint):
            return
        done = int(checkpoint.get('meta', {}).get('iter', 0))
        # mmengine calls this hook for load_from and resume alike; only a resumed run continues
        # a schedule whose scoring points may be behind it
        points = self._score_iters(runner)
        if getattr(runner, '_resume', False) and points and done >= points[0]:
            raise RuntimeError(
                f'LabelIssueHook: cannot resume at iteration {done}, past the first scoring '
                f'point {points[0]}: the checkpoint holds no label-issue '
                'flags. Resume with the config that wrote the checkpoint, or start a new run '
                'from its weights with load_from.')


__all__ = ['LabelIssueHook', 'HOOK_ACTIONS', 'CHECKPOINT_KEY', 'SUMMARY_FILE',
           'check_assigner_ignores', 'check_flags_are_read']
