"""Generating a whole benchmark into a folder (not atomic: see ``benchmark.py`` for publishing)."""
import os
from typing import Any, Dict

import cv2
import numpy as np

from .benchmark_config import BENCHMARK_VERSION, SPLITS, BenchmarkConfig
from .coco_format import annotation_record, categories, image_record, write_json
from .label_noise import flip_labels
from .object_patches import tight_boxes
from .object_sources import ObjectSource
from .pool_partition import partition_pool
from .random_streams import random_stream
from .split_plan import plan_split
from .split_render import render_split

#: written last; its presence marks a complete benchmark
INFO_FILE = 'benchmark.json'
LABEL_NOISE_POLICY = ('train only; exactly round(noise_rate * N) of the N train annotations, '
                      'chosen uniformly without replacement, get a different label (uniform: any '
                      'other class, uniformly; pairflip: c -> (c + 1) mod C)')
IMBALANCE_POLICY = ('train only; class c gets a share of the train objects proportional to '
                    'imbalance_ratio ** (-c / (C - 1)) (Cui et al. 2019), the image count is kept')


def annotation_file(root: str, split: str) -> str:
    """``<root>/annotations/<split>.json``."""
    return os.path.join(root, 'annotations', f'{split}.json')


def build_benchmark(cfg: BenchmarkConfig, source: ObjectSource, out_dir: str) -> Dict[str, Any]:
    """Generate every split of ``cfg`` from ``source`` into ``out_dir``.

    Layout: ``<out_dir>/<split>/<image_id>.png`` (8-bit grayscale), COCO annotations in
    ``<out_dir>/annotations/<split>.json``, and ``<out_dir>/benchmark.json`` (parameters, classes,
    per-split counts), written last.

    Steps: the usable (non-blank) source objects are partitioned across splits in proportion to
    each split's expected number of objects (so no source object is in two splits); each split is
    planned and rendered with its own random stream; label noise is applied to train labels with
    another stream. Image and annotation ids are unique across splits.

    Args:
        cfg: the benchmark's parameters.
        source: the loaded object pool named by ``cfg.source``.
        out_dir: an existing, empty folder.

    Returns:
        The content written to ``benchmark.json``.
    """
    source_boxes, usable = tight_boxes(source.images, cfg.pixel_threshold)
    num_classes = len(source.classes)
    mean_objects = (cfg.min_objects + cfg.max_objects) / 2
    # balanced weights (no train-only option enters), so val/test/meta are the same for every
    # noise / imbalance variant of a seed
    weights = {s: n * mean_objects for s, n in cfg.split_images.items()}
    pools = partition_pool(source.labels, usable, num_classes, weights,
                           random_stream(cfg.seed, 'partition'), source.classes)

    split_info = {}
    first_image_id = 1
    for split in SPLITS:
        rng = random_stream(cfg.seed, 'layout', split)
        plan = plan_split(split, pools[split], source.labels, num_classes,
                          cfg.split_images[split], first_image_id, cfg.min_objects,
                          cfg.max_objects, cfg.min_size, cfg.max_size, cfg.max_reuse,
                          cfg.imbalance_ratio if split == 'train' else 1.0, rng, source.classes)
        first_image_id += cfg.split_images[split]
        labels = plan.labels
        if split == 'train':
            labels = flip_labels(plan.labels, cfg.noise_type, cfg.noise_rate, num_classes,
                                 random_stream(cfg.seed, 'noise'))
        images, annotations = [], []
        image_dir = os.path.join(out_dir, split)
        os.makedirs(image_dir)
        rendered = render_split(plan, source.images, source_boxes, cfg.canvas_size, cfg.min_size,
                                cfg.max_size, cfg.min_gap, cfg.pixel_threshold, rng)
        starts = plan.image_starts
        for i, (image, boxes, scales) in enumerate(rendered):
            image_id = int(plan.image_ids[i])
            file_name = f'{image_id:06d}.png'
            if not cv2.imwrite(os.path.join(image_dir, file_name), image):
                raise OSError(f'could not write {os.path.join(image_dir, file_name)}')
            images.append(image_record(image_id, file_name, cfg.canvas_size, split))
            for k, j in enumerate(range(starts[i], starts[i + 1])):
                # ids from the image id, so a split's ids never depend on the other splits' content
                ann_id = (image_id - 1) * cfg.max_objects + k + 1
                annotations.append(annotation_record(
                    ann_id, image_id, boxes[k], labels[j], plan.labels[j], plan.source_index[j],
                    scales[k]))
        write_json(dict(info=dict(description=f'mmreweight embedded benchmark {cfg.name}, '
                                              f'split {split}', version=str(BENCHMARK_VERSION)),
                        images=images, annotations=annotations,
                        categories=categories(source.classes, source.name)),
                   annotation_file(out_dir, split))
        split_info[split] = dict(
            images=len(images), objects=len(annotations), source_objects=len(pools[split]),
            distinct_source_objects_used=int(np.unique(plan.source_index).size),
            image_ids=[int(plan.image_ids[0]), int(plan.image_ids[-1])],
            flipped=int((labels != plan.labels).sum()),
            # lets a reader tell a complete file from a truncated copy without parsing it
            annotation_bytes=os.path.getsize(annotation_file(out_dir, split)))

    info = dict(
        version=BENCHMARK_VERSION, name=cfg.name, params=cfg.to_dict(),
        classes=list(source.classes), category_ids=list(range(1, num_classes + 1)),
        source=dict(name=source.name, files=list(source.files), objects=len(source),
                    blank_objects_skipped=int((~usable).sum())),
        splits=split_info, label_noise=LABEL_NOISE_POLICY, imbalance=IMBALANCE_POLICY,
        software=dict(numpy=np.__version__, opencv=cv2.__version__))
    write_json(info, os.path.join(out_dir, INFO_FILE), indent=2)
    return info
