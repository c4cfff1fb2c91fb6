"""The study's retinanet_noise_oracle.py trains on the noisy benchmark and drops exactly the anchors of
the annotations whose labels the benchmark corrupted (as the head's own weight log reports them)."""
from integration_helpers import build_runner, tiny_cfg


def test_oracle_zeroes_noisy_annotations_and_keeps_the_rest(tmp_path):
    cfg = tiny_cfg('retinanet_noise_oracle.py', tmp_path, iters=2,
                   bench=dict(noise_type='uniform', noise_rate=0.4))
    runner = build_runner(cfg)
    runner.train()
    # the weights of the last training batch, averaged by ReweightRetinaHead.weight_stats over the
    # anchors of noisy / clean annotations (flags from the dataset, not from the weighter)
    stats = runner.model.bbox_head.last_weight_stats
    assert stats['meta_w_noisy'] == 0.0
    assert stats['meta_w_neg'] == 1.0
    assert abs(stats['meta_w_pos'] - 1.0) < 1e-5  # mean one over the foreground
    assert stats['meta_w_clean'] > 1.0
    assert runner.message_hub.get_scalar('train/noise_oracle_noisy_anchors').current() > 0
