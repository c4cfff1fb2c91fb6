"""MetaReweightHook: drives a per-anchor weighter (L2RW, Meta-Weight-Net, MentorNet) inside the
mmengine runner loop."""
import math
from typing import Dict, Iterator, Optional, Union

import torch
from mmengine.dist import all_reduce, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.hooks.hook import DATA_BATCH
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.registry import DATASETS, DefaultScope
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from mmreweight.registry import HOOKS, MODELS
from .dataset_check_hook import check_classes_fit_heads
from .meta_clean_split import check_disjoint

CHECKPOINT_KEY = 'meta_reweight'
EMPTY_CLEAN_SUBSET = ('MetaReweightHook: the clean subset is empty (no image left after the '
                      "dataset's filter_cfg, e.g. filter_empty_gt drops images without "
                      'annotations); it must hold annotated images')


def _builds_empty_dataset(cfg) -> bool:
    """Whether dataset config ``cfg``, built without serialisation, has no item (False when it
    cannot be built that way, e.g. a dataset builder that takes no ``serialize_data``)."""
    if not isinstance(cfg, dict):
        return False
    try:
        return len(DATASETS.build(dict(cfg, serialize_data=False))) == 0
    except Exception:  # noqa: BLE001 - only a positive answer matters here
        return False


def _build_weighter(cfg):
    if isinstance(cfg, torch.nn.Module):
        return cfg
    cfg = dict(cfg)
    # Unprefixed names resolve in mmreweight's scope whatever the config's default scope is.
    if '.' not in str(cfg.get('type', '')):
        with DefaultScope.overwrite_default_scope('mmreweight'):
            return MODELS.build(cfg)
    return MODELS.build(cfg)


@HOOKS.register_module()
class MetaReweightHook(Hook):
    r"""Attach a per-anchor weighter to the detector's head and feed it clean batches.

    * ``before_run``: move the weighter to the model's device (before a resume loads its state).
    * ``before_train``: check the head takes per-anchor weights, bind meta weighters to the
      unwrapped detector (:math:`\alpha` = the current learning rate of each meta parameter in
      ``runner.optim_wrapper``), build the clean dataloader and check it is disjoint from the
      training set.
    * ``before_train_iter`` from iteration ``begin`` on (unweighted loss before), every
      ``interval`` iterations (of ``runner.iter``, so resuming keeps the schedule): draw a clean
      batch, run the detector's data preprocessor on it and call
      ``weighter.prepare_clean`` (L2RW computes :math:`g_c` here; MW-Net caches clean features and
      runs its meta step inside the head's loss). The training batch is forwarded once, by the
      normal ``train_step``; meta gradients use ``torch.autograd.grad`` only, never the model's
      optim wrapper (whose gradient-accumulation counters must not move). Between meta iterations
      the weighter reuses its state (L2RW: the last :math:`g_c`; MW-Net: the VNet, not updated).
    * ``after_train_iter``: log ``train/meta_*`` scalars (mean weight of positive / negative
      anchors, fraction of zero weights, mean weight of anchors matched to noisy / clean
      annotations when the data carry ``gt_instances.noisy``, and the weighter's own scalars).
    * checkpoints: the weighter's state (VNet, its optimizer, MentorNet's moving averages) is saved
      under ``checkpoint['meta_reweight']`` and restored on resume; resuming from a checkpoint
      without it (or with another weighter's) is an error, ``load_from`` starts the weighter
      fresh.

    Args:
        weighter: config (or instance) of an :class:`AnchorWeighter`, e.g.
            ``dict(type='L2RWWeighter')``.
        clean_dataloader: dataloader config (or instance) of the clean subset; required when the
            weighter ``needs_clean_batch``. See :mod:`mmreweight.engine.meta_clean_split` to split
            one off the training set.
        interval: meta step every ``interval`` iterations (>= 1).
        begin: iteration from which the weighter is used (before it: RetinaHead's unweighted loss,
            no meta steps). Per-anchor L2RW from a fresh RetinaNet drops nearly every background
            anchor at first (see :mod:`mmreweight.weighting.l2rw`); a warm-up avoids that phase.
        theta: shortcut for the weighter's ``theta`` (``'cls_out'``, ``'head'``, ``'all'``).
    """
    priority = 'NORMAL'

    def __init__(self, weighter: Union[dict, torch.nn.Module],
                 clean_dataloader: Union[dict, DataLoader, None] = None, interval: int = 1,
                 theta: Optional[str] = None, begin: int = 0) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'interval must be an integer >= 1, got {interval!r}')
        if not isinstance(begin, int) or begin < 0:
            raise ValueError(f'begin must be an integer >= 0, got {begin!r}')
        if theta is not None and isinstance(weighter, dict):
            weighter = dict(weighter, theta=theta)
        self.weighter = _build_weighter(weighter)
        self.needs_clean = bool(getattr(self.weighter, 'needs_clean_batch', False))
        if self.needs_clean and clean_dataloader is None:
            raise ValueError(f'{type(self.weighter).__name__} needs a held-out clean subset: set '
                             "MetaReweightHook(clean_dataloader=...) (e.g. the benchmark's "
                             "'meta' split, or mmreweight.CleanSplit).")
        self.clean_dataloader_cfg = clean_dataloader
        self.interval = interval
        self.begin = begin
        self._head = None
        self.clean_dataloader: Optional[DataLoader] = None
        self._clean_iter: Optional[Iterator] = None
        self._clean_epoch = 0

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _detector(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    @staticmethod
    def _lr_fn(runner):
        """Current learning rate of each given parameter in the model's optimizer(s)."""

        def lrs(params):
            wrappers = (runner.optim_wrapper.values()
                        if isinstance(runner.optim_wrapper, OptimWrapperDict)
                        else [runner.optim_wrapper])
            group_lr = {}
            for wrapper in wrappers:
                for group in wrapper.optimizer.param_groups:
                    for p in group['params']:
                        group_lr[id(p)] = group['lr']
            missing = [i for i, p in enumerate(params) if id(p) not in group_lr]
            if missing:
                raise RuntimeError(f'{len(missing)} meta parameters are not in the optimizer')
            return [group_lr[id(p)] for p in params]

        return lrs

    def _next_clean(self):
        if self._clean_iter is not None:
            try:
                return next(self._clean_iter)
            except StopIteration:
                self._clean_iter = None
        sampler = getattr(self.clean_dataloader, 'sampler', None)
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(self._clean_epoch)
        self._clean_epoch += 1
        self._clean_iter = iter(self.clean_dataloader)
        try:
            return next(self._clean_iter)
        except StopIteration:  # a whole pass without a batch: waiting would never end
            self._clean_iter = None
            raise ValueError(
                f'MetaReweightHook: the clean dataloader of process {get_rank()} yields no batch '
                f'(its shard of the {len(self.clean_dataloader.dataset)} clean images is empty '
                'or smaller than batch_size with drop_last=True)') from None

    def _build_clean_dataloader(self, runner) -> DataLoader:
        cfg = self.clean_dataloader_cfg
        if isinstance(cfg, DataLoader):
            return cfg
        try:
            return runner.build_dataloader(cfg, seed=runner.seed)
        except ValueError as err:
            # mmengine serialises a dataset when building it and fails on an empty one ('need at
            # least one array to concatenate') before any size check could run.
            if _builds_empty_dataset(cfg.get('dataset')):
                raise ValueError(EMPTY_CLEAN_SUBSET) from err
            raise

    def _check_clean_dataloader(self, loader) -> None:
        """Every process must get clean batches of its own: raise the same error on every rank
        (the dataset size is the same everywhere; batch counts are all-reduced) instead of
        leaving one rank waiting for a batch while the others wait in the meta all-reduce."""
        size, world = len(loader.dataset), get_world_size()
        if size == 0:
            raise ValueError(EMPTY_CLEAN_SUBSET)
        if size < world:
            raise ValueError(f'MetaReweightHook: the clean subset has {size} images for {world} '
                             'processes; each process needs clean images of its own (use more '
                             'clean images or fewer processes)')
        try:
            batches = len(loader)
        except TypeError:  # a sampler without a length: nothing to check ahead
            return
        fewest = torch.tensor([batches], dtype=torch.int64)
        all_reduce(fewest, op='min')
        if int(fewest) == 0:
            raise ValueError(f'MetaReweightHook: a process gets no clean batch from the '
                             f'{size} clean images (batch_size {loader.batch_size}, drop_last '
                             f'{getattr(loader, "drop_last", None)}, {world} processes)')

    # ------------------------------------------------------------------ hook points
    def before_run(self, runner: Runner) -> None:
        param = next(self._detector(runner).parameters(), None)
        if param is not None:
            self.weighter.to(param.device)

    def before_train(self, runner: Runner) -> None:
        detector = self._detector(runner)
        head = getattr(detector, 'bbox_head', None)
        if head is None or not getattr(head, 'supports_anchor_weights', False):
            raise TypeError(
                f'MetaReweightHook: {type(head).__name__} cannot take per-anchor weights; set '
                "model.bbox_head.type='mmreweight.ReweightRetinaHead'.")
        if hasattr(self.weighter, 'bind'):
            self.weighter.bind(detector, lr=self._lr_fn(runner))
        if self.needs_clean:
            self.clean_dataloader = self._build_clean_dataloader(runner)
            self._check_clean_dataloader(self.clean_dataloader)
            check_classes_fit_heads(self.clean_dataloader.dataset, detector, 'clean subset')
            checked = check_disjoint(runner.train_dataloader.dataset,
                                     self.clean_dataloader.dataset)
            runner.logger.info(
                f'MetaReweightHook: {type(self.weighter).__name__} '
                f'(theta={getattr(self.weighter, "theta", None)!r}) with '
                f'{len(self.clean_dataloader.dataset)} clean images, every {self.interval} '
                f'iteration(s) from iteration {self.begin}; '
                + (f'disjoint from the training set, checked {checked.how}' if checked
                   else 'datasets expose no image ids, overlap not checked'))
            done = self._meta_steps_before(runner.iter)
            if done:
                # Like IterBasedTrainLoop does for training data: resume the clean stream where
                # the interrupted run stopped.
                runner.logger.info(f'MetaReweightHook: advancing the clean dataloader {done} '
                                   'batches')
                for _ in range(done):
                    self._next_clean()
        self._head = head

    def _meta_steps_before(self, iteration: int) -> int:
        """Meta steps taken by iterations ``begin, begin + interval, ...`` before ``iteration``."""
        return -(-max(iteration - self.begin, 0) // self.interval)

    def before_train_iter(self, runner: Runner, batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        self.weighter.progress = runner.iter / max(runner.max_iters, 1)
        if runner.iter < self.begin:
            return
        self._head.weighter = self.weighter
        if not self.needs_clean or (runner.iter - self.begin) % self.interval:
            return
        detector = self._detector(runner)
        data = detector.data_preprocessor(self._next_clean(), True)
        inputs, samples = data['inputs'], data['data_samples']
        if len(samples) == 0 or sum(len(s.gt_instances) for s in samples) == 0:
            raise ValueError('MetaReweightHook: empty clean batch (no images or no annotated '
                             'objects); the clean subset must contain annotated images.')
        self.weighter.prepare_clean(inputs, samples)

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        head = getattr(self._detector(runner), 'bbox_head', None)
        if getattr(head, 'weighter', None) is not self.weighter:
            return  # before `begin`
        scalars: Dict[str, float] = dict(getattr(head, 'last_weight_stats', {}))
        scalars.update(self.weighter.log_scalars())
        for key, value in scalars.items():
            if value is not None and math.isfinite(value):
                runner.message_hub.update_scalar(f'train/{key}', value)

    def after_train(self, runner: Runner) -> None:
        head = getattr(self._detector(runner), 'bbox_head', None)
        if head is not None and getattr(head, 'weighter', None) is self.weighter:
            head.weighter = None
        if hasattr(self.weighter, 'unbind'):
            self.weighter.unbind()

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict:
        if hasattr(self.weighter, 'meta_state_dict'):
            return self.weighter.meta_state_dict()
        return dict(weighter=self.weighter.state_dict())

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = dict(type=type(self.weighter).__name__, state=self._state())

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        saved = checkpoint.get(CHECKPOINT_KEY)
        expected = type(self.weighter).__name__
        found = None if saved is None else saved['type']
        if found == expected:
            if hasattr(self.weighter, 'load_meta_state_dict'):
                self.weighter.load_meta_state_dict(saved['state'])
            else:
                self.weighter.load_state_dict(saved['state']['weighter'])
            return
        what = ('no weighter state' if found is None else f'{found} state, not {expected} state')
        # mmengine calls this hook for load_from and resume alike; only its private flag tells
        # them apart. A resumed run continues the schedule, so a fresh weighter would silently
        # lose the run's meta state (the VNet, its optimizer, MentorNet's moving averages).
        if getattr(runner, '_resume', False):
            raise RuntimeError(
                f'MetaReweightHook: cannot resume, the checkpoint holds {what}. Resume with the '
                'config that wrote the checkpoint, or start a new run from its detector weights '
                'with load_from (without resume), which starts the weighter fresh.')
        # load_from a plain detector checkpoint is the usual warm start; another weighter's state
        # is more likely a mistake.
        log = runner.logger.info if found is None else runner.logger.warning
        log(f'MetaReweightHook: the checkpoint holds {what}; the detector weights are loaded and '
            'the weighter starts fresh.')


__all__ = ['MetaReweightHook', 'CHECKPOINT_KEY']
