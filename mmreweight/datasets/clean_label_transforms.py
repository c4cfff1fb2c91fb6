"""Transforms that carry the true labels and noise flags of the embedded benchmark to the model.

Pipeline::

    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='mmreweight.LoadCleanLabels'),
    ...  # transforms that keep every box (Resize, RandomFlip, Pad)
    dict(type='mmreweight.PackDetInputsWithCleanLabels'),

``data_sample.gt_instances`` then has ``clean_labels`` (int64) and ``noisy`` (bool) next to
``bboxes`` and ``labels``. Transforms that drop boxes (``FilterAnnotations``, ``RandomCrop``) do not
know these arrays; ``InstanceData`` then refuses the mismatched lengths when packing.
"""
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import PackDetInputs

from ..registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadCleanLabels(BaseTransform):
    """Add ``gt_clean_labels`` (int64) and ``gt_noisy`` (bool) from the instances.

    Reads ``instances[i]['clean_bbox_label']`` and ``instances[i]['noisy']`` as set by
    :class:`~.embedded_detection_dataset.EmbeddedDetectionDataset`, in the order
    ``LoadAnnotations`` uses for ``gt_bboxes``.
    """

    def transform(self, results: dict) -> dict:
        instances = results.get('instances', [])
        results['gt_clean_labels'] = np.array([i['clean_bbox_label'] for i in instances],
                                              dtype=np.int64)
        results['gt_noisy'] = np.array([i['noisy'] for i in instances], dtype=bool)
        return results


@TRANSFORMS.register_module()
class PackDetInputsWithCleanLabels(PackDetInputs):
    """``PackDetInputs`` that also packs ``gt_clean_labels`` and ``gt_noisy`` into
    ``gt_instances.clean_labels`` and ``gt_instances.noisy`` (split by ignore flag as the rest)."""

    mapping_table = dict(PackDetInputs.mapping_table, gt_clean_labels='clean_labels',
                         gt_noisy='noisy')
