"""The study's retinanet_mentornet_dd_monotone.py trains on the noisy benchmark with a mentor file, and
the envelope's share of lowered weights reaches the runner's log."""
import math

from integration_helpers import build_runner, find_hook, tiny_cfg

from mmreweight.engine.meta_hook import MetaReweightHook

from mmreweight.weighting.mentornet.dd import save_mentor
from mmreweight.weighting.mentornet.net import MentorNetwork


def test_dd_monotone_config_trains_and_logs_the_envelope(tmp_path):
    net = MentorNetwork(seed=1)
    net.input_scale.fill_(20.0)  # a random mentor that wiggles over detection-sized losses
    mentor = str(tmp_path / 'mentor.pth')
    save_mentor(mentor, net)
    cfg = tiny_cfg('retinanet_mentornet_dd_monotone.py', tmp_path, iters=2,
                   bench=dict(noise_type='uniform', noise_rate=0.4))
    weighter = cfg.custom_hooks[0]['weighter']
    assert weighter['monotone'] is True
    weighter.update(mentor_checkpoint=mentor, burn_in=None)  # the curriculum from iteration 1
    runner = build_runner(cfg)
    runner.train()
    assert find_hook(runner, MetaReweightHook).weighter.monotone
    lowered = runner.message_hub.get_scalar('train/mentornet_monotone_lowered').current()
    assert 0.0 <= lowered <= 1.0
    stats = runner.model.bbox_head.last_weight_stats
    assert stats['meta_w_neg'] == 1.0  # normalise='foreground': background keeps weight 1
    assert abs(stats['meta_w_pos'] - 1.0) < 1e-5 and math.isfinite(stats['meta_w_noisy'])
    assert math.isfinite(runner.message_hub.get_scalar('train/loss').current())
