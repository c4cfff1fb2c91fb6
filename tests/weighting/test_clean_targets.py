"""CleanTargetCache returns exactly the targets mmdet computes, image by image, from memory."""
import copy
from types import SimpleNamespace

import pytest
import torch

import mmreweight  # noqa: F401
from mmreweight.testing.tiny_retinanet import build_tiny_retinanet, synthetic_batch
from mmreweight.weighting.clean_targets import CleanTargetCache, has_deterministic_targets


def _sizes(model, inputs):
    with torch.no_grad():
        return [f.shape[-2:] for f in model.extract_feat(inputs)]


def _direct(head, sizes, samples):
    from mmdet.models.utils import unpack_gt_instances
    gts, ignores, metas = unpack_gt_instances(samples)
    return head.flat_targets(sizes, gts, metas, ignores)


def _flipped(samples, size):
    out = copy.deepcopy(samples)
    for s in out:
        b = s.gt_instances.bboxes.clone()
        s.gt_instances.bboxes = torch.stack([size - b[:, 2], b[:, 1], size - b[:, 0], b[:, 3]], 1)
    return out


@pytest.mark.parametrize('max_mb', [256, 0.015])
def test_cached_targets_equal_mmdets_over_repeats_flips_and_shapes(max_mb):
    model = build_tiny_retinanet()
    head = model.bbox_head
    cache = CleanTargetCache(head, max_mb=max_mb)
    assert cache.enabled
    small, a = synthetic_batch(num_images=3, seed=3)
    big, b = synthetic_batch(num_images=2, size=96, seed=4)
    ignored = copy.deepcopy(a[:1])
    ignored[0].ignored_instances = ignored[0].gt_instances[:1]
    sequence = [(small, a), (small, _flipped(a, 64)), (small[[2, 0]], [a[2], a[0]]),
                (big, b), (small, a), (small[:1], ignored), (small[:1], a[:1])]
    for inputs, samples in sequence * 2:
        sizes = _sizes(model, inputs)
        got, want = cache(sizes, samples, 'cpu'), _direct(head, sizes, samples)
        assert torch.equal(got.labels, want.labels)
        assert torch.equal(got.label_weights, want.label_weights)
        assert got.avg_factor == float(want.avg_factor)
        assert (got.labels < head.num_classes).any()
        assert cache._bytes <= cache.max_bytes
    if max_mb == 256:
        # 3 + 3 flipped + 2 at 96 px + 1 with an ignored box are all the distinct images
        assert cache.misses == 9 and cache.hits == 2 * 15 - 9
    else:  # ~2 images fit: entries are evicted and recomputed, still exact
        assert cache.misses > 9 and len(cache._store) < 9


def test_random_samplers_and_zero_size_are_not_cached():
    assert not has_deterministic_targets(SimpleNamespace(sampler=object()))
    assert not has_deterministic_targets(SimpleNamespace())
    model = build_tiny_retinanet()
    assert has_deterministic_targets(model.bbox_head)
    cache = CleanTargetCache(model.bbox_head, max_mb=0)
    inputs, samples = synthetic_batch(seed=3)
    sizes = _sizes(model, inputs)
    got, want = cache(sizes, samples, 'cpu'), _direct(model.bbox_head, sizes, samples)
    assert torch.equal(got.labels, want.labels) and not cache._store
    with pytest.raises(ValueError, match='clean_target_cache_mb'):
        CleanTargetCache(model.bbox_head, max_mb=-1)
