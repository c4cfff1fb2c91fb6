"""Every method trains under ``--amp`` (bf16 autocast on the CPU) with finite losses, and the
losses keep their statistics in float32. The long run is ``tools/soak.py --amp``."""
import math

import pytest
import torch
from integration_helpers import build_runner, tiny_cfg

from mmreweight.engine.amp import enable_amp
from mmreweight.engine.meta_hook import MetaReweightHook

pytestmark = pytest.mark.slow

ITERS = 10
METHODS = ['retinanet_focal.py', 'retinanet_ghm.py', 'retinanet_cb_focal.py',
           'retinanet_l2rw.py', 'retinanet_mwnet.py', 'retinanet_mentornet.py']


def amp_runner(config, work_dir, iters=ITERS):
    cfg = tiny_cfg(config, work_dir, iters, deterministic=False)
    enable_amp(cfg)  # what tools/train.py --amp does
    return build_runner(cfg)


def _watch_dtypes(runner):
    """Record the dtype of the backbone's output and of the classification loss's input and
    output during training forwards."""
    seen = dict(backbone=set(), loss_in=set(), loss_out=set())
    model = runner.model

    def on_backbone(module, args, out):
        if torch.is_grad_enabled():
            seen['backbone'].add(out[0].dtype)

    def on_loss(module, args, out):
        seen['loss_in'].add(args[0].dtype)
        seen['loss_out'].add(out.dtype)

    model.backbone.register_forward_hook(on_backbone)
    model.bbox_head.loss_cls.register_forward_hook(on_loss)
    return seen


@pytest.mark.parametrize('config', METHODS)
def test_trains_under_bf16_autocast(config, tmp_path):
    runner = amp_runner(config, tmp_path)
    seen = _watch_dtypes(runner)
    runner.train()
    assert runner.iter == ITERS
    assert type(runner.optim_wrapper).__name__ == 'AutocastOptimWrapper'

    # autocast really ran the convolutions in bf16; parameters stayed float32
    assert seen['backbone'] == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in runner.model.parameters())
    assert seen['loss_out'] == {torch.float32}, seen  # losses upcast bf16 logits

    hub = runner.message_hub
    for key in ('train/loss', 'train/loss_cls', 'train/loss_bbox'):
        values, counts = hub.get_scalar(key).data
        assert len(values) == ITERS, key
        bad = [(i, v) for i, v in enumerate(values) if not math.isfinite(float(v))]
        assert not bad, f'{config}: non-finite {key} at iterations {bad}'
    meta = [k for k in hub.log_scalars if k.startswith('train/meta_') or 'mentornet' in k]
    hook = [h for h in runner.hooks if isinstance(h, MetaReweightHook)]
    if hook:
        assert meta, 'meta-reweighting logged nothing'
        w = hook[0].weighter
        for name, tensor in list(w.state_dict().items()):
            if tensor.is_floating_point():
                assert tensor.dtype == torch.float32, name
                assert torch.isfinite(tensor).all(), name
    for key in meta:
        values, _ = hub.get_scalar(key).data
        # -inf is a legitimate log10 of a zero hypergradient; NaN is not
        assert not any(math.isnan(float(v)) for v in values), key
    for name, p in runner.model.named_parameters():
        assert torch.isfinite(p).all(), name


def test_ghm_statistics_stay_float32_under_autocast(tmp_path):
    runner = amp_runner('retinanet_ghm.py', tmp_path, iters=3)
    seen = _watch_dtypes(runner)
    runner.train()
    head = runner.model.bbox_head
    assert seen['loss_in'] == {torch.bfloat16}  # the loss was fed bf16 logits ...
    for loss in (head.loss_cls, head.loss_bbox):
        assert loss.acc_sum.dtype == torch.float32  # ... and kept its moving averages in fp32
        assert torch.isfinite(loss.acc_sum).all() and loss.acc_sum.abs().sum() > 0
    # The averages of anchor counts (~10^4 per bin) were computed in fp32, not computed in bf16
    # (8 significant bits) and stored: some of them are not bf16 numbers.
    acc = head.loss_cls.acc_sum
    assert not torch.equal(acc, acc.bfloat16().float())
