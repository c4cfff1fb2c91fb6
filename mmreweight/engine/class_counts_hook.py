"""Fills class-balanced losses with the training set's class counts before training."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmreweight.losses import CBFocalLoss
from mmreweight.registry import HOOKS
from mmreweight.weighting.class_counts import count_instances_per_class


@HOOKS.register_module()
class ClassCountsHook(Hook):
    """Count the instances per class of ``runner.train_dataloader.dataset`` and hand them to
    every :class:`~mmreweight.losses.CBFocalLoss` of the model built without explicit
    ``class_counts``; log the resulting class weights once.

    Runs in ``before_train``, after a checkpoint is loaded or resumed, so the counts always
    describe the data being trained on. Every DDP rank counts the whole dataset (the dataset
    object is not sharded, the sampler is), so all ranks get the same weights.

    Config: ``custom_hooks = [dict(type='mmreweight.ClassCountsHook')]``.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner: Runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        losses = [m for m in model.modules()
                  if isinstance(m, CBFocalLoss) and not m.counts_explicit]
        if not losses:
            runner.logger.info('ClassCountsHook: no class-balanced loss without class_counts')
            return
        dataset = runner.train_dataloader.dataset
        names = dataset.metainfo.get('classes') if hasattr(dataset, 'metainfo') else None
        counts_of = {}  # num_classes -> counts, each counted once
        for loss in losses:
            if loss.num_classes not in counts_of:
                counts_of[loss.num_classes] = count_instances_per_class(dataset, loss.num_classes)
            counts = counts_of[loss.num_classes]
            weights = loss.set_class_counts(counts, names)
            rows = ', '.join(
                f'{names[c] if names is not None and c < len(names) else c}: {n} -> {w:.4f}'
                for c, (n, w) in enumerate(zip(counts.tolist(), weights.tolist())))
            runner.logger.info(f'ClassCountsHook: class counts -> class-balanced weights '
                               f'(beta={loss.beta}, background weight 1): {rows}')
