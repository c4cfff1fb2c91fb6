"""The study's retinanet_mentornet_dd_monotone.py trains on the noisy benchmark with a mentor file, and
the envelope's share of lowered weights reaches the runner's log."""
import math

import torch
from integration_helpers import build_runner, find_hook, tiny_cfg

from mmreweight.engine.meta_hook import MetaReweightHook
from mmreweight.weighting.mentornet import MentorNetWeighter
from mmreweight.weighting.mentornet.dd import save_mentor
from mmreweight.weighting.mentornet.net import MentorNetwork
from mmreweight.weighting.mentornet.weighter import ZERO_EPS

#: v = sigmoid(RISE * tanh(c)), c = sigmoid(GATE) * tanh(loss): the mentor below
RISE, GATE = 5.0, 20.0


def rising_mentor() -> MentorNetwork:
    """A mentor whose v rises with the loss alone (label, epoch and diff ignored), from 1/2 at
    loss 0: its lower envelope is 1/2, so it lowers every anchor whose v exceeds 1/2."""
    net = MentorNetwork(seed=1)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.lstm.gates.bias[0] = GATE  # forward direction's input gate: open
        net.lstm.gates.weight[1, 0] = 1.0  # forward candidate: the loss
        c_forward = net.label_embedding.embedding_dim + net.epoch_embedding.shape[1]
        net.fc1.weight[0, c_forward] = 1.0
        net.fc2.weight[0, 0] = RISE
    return net


def test_dd_monotone_config_trains_and_logs_the_envelope(tmp_path, monkeypatch):
    mentor = str(tmp_path / 'mentor.pth')
    save_mentor(mentor, rising_mentor())
    cfg = tiny_cfg('retinanet_mentornet_dd_monotone.py', tmp_path, iters=2,
                   bench=dict(noise_type='uniform', noise_rate=0.4))
    weighter = cfg.custom_hooks[0]['weighter']
    assert weighter['monotone'] is True
    weighter.update(mentor_checkpoint=mentor, burn_in=None)  # the curriculum from iteration 1
    contexts = []
    forward = MentorNetWeighter.forward

    def recording_forward(self, ctx):
        contexts.append(ctx)
        return forward(self, ctx)

    monkeypatch.setattr(MentorNetWeighter, 'forward', recording_forward)
    runner = build_runner(cfg)
    runner.train()
    assert find_hook(runner, MetaReweightHook).weighter.monotone
    # the share of the last step's foreground anchors whose v the envelope (1/2) lowered, by hand
    ctx = contexts[-1]
    loss = ctx.loss.detach().float()[ctx.valid & ctx.foreground]
    v = torch.sigmoid(RISE * torch.tanh(torch.sigmoid(torch.tensor(GATE)) * torch.tanh(loss)))
    expected = float((v - 0.5 > ZERO_EPS).float().mean())
    assert expected > 0.5  # the positives' losses are well above 0: most weights are lowered
    lowered = runner.message_hub.get_scalar('train/mentornet_monotone_lowered').current()
    assert lowered == expected
    stats = runner.model.bbox_head.last_weight_stats
    assert stats['meta_w_neg'] == 1.0  # normalise='foreground': background keeps weight 1
    assert abs(stats['meta_w_pos'] - 1.0) < 1e-5 and math.isfinite(stats['meta_w_noisy'])
    assert math.isfinite(runner.message_hub.get_scalar('train/loss').current())
