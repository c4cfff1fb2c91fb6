"""MetaReweightHook in a real mmengine Runner: training, logging, checkpoint round trip, errors."""
import copy

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.dataset import BaseDataset
from mmengine.runner import Runner
from mmengine.structures import InstanceData

import mmreweight  # noqa: F401
from mmreweight.engine.meta_clean_split import CleanSplit, split_clean_indices
from mmreweight.engine.meta_hook import CHECKPOINT_KEY, MetaReweightHook
from mmreweight.testing.tiny_retinanet import tiny_retinanet_cfg
from mmreweight.registry import DATASETS


@DATASETS.register_module(force=True)
class ToyMetaDataset(BaseDataset):
    """Random 64x64 images with 1-3 boxes of 3 classes (none when ``empty=True``)."""
    METAINFO = dict(classes=('a', 'b', 'c'))

    def __init__(self, num=12, seed=0, empty=False, **kwargs):
        self.num, self.seed, self.empty = num, seed, empty
        super().__init__(ann_file='', data_root='', serialize_data=False, **kwargs)

    def load_data_list(self):
        g = torch.Generator().manual_seed(self.seed)
        data = []
        for i in range(self.num):
            k = 0 if self.empty else int(torch.randint(1, 4, (1, ), generator=g))
            xy = torch.rand(k, 2, generator=g) * 30
            wh = torch.rand(k, 2, generator=g) * 20 + 14
            instances = [dict(bbox=torch.cat([xy[j], xy[j] + wh[j]]).tolist(),
                              bbox_label=int(torch.randint(3, (1, ), generator=g)),
                              ignore_flag=0, noisy=bool(j == 0)) for j in range(k)]
            data.append(dict(img_id=i, img_path=f'toy/{self.seed}/{i}.png', instances=instances))
        return data

    def prepare_data(self, idx):
        info = self.get_data_info(idx)
        g = torch.Generator().manual_seed(1000 * self.seed + idx)
        sample = DetDataSample(metainfo=dict(img_id=info['img_id'], img_shape=(64, 64),
                                             ori_shape=(64, 64), scale_factor=(1., 1.)))
        inst = InstanceData()
        inst.bboxes = torch.tensor([i['bbox'] for i in info['instances']],
                                   dtype=torch.float32).reshape(-1, 4)
        inst.labels = torch.tensor([i['bbox_label'] for i in info['instances']], dtype=torch.long)
        inst.noisy = torch.tensor([i['noisy'] for i in info['instances']], dtype=torch.bool)
        sample.gt_instances = inst
        return dict(inputs=torch.rand(3, 64, 64, generator=g) * 255, data_samples=sample)


SPLIT = dict(num=4, seed=0)
TOY = dict(type='ToyMetaDataset', num=12)


def loader(dataset, shuffle=True, infinite=False):
    return dict(batch_size=2, num_workers=0, dataset=dataset,
                sampler=dict(type='InfiniteSampler' if infinite else 'DefaultSampler',
                             shuffle=shuffle))


def make_runner(work_dir, max_iters, hook, resume=False, load_from=None, head_type=None,
                train_dataset=None):
    model = tiny_retinanet_cfg(**({} if head_type is None else dict(head_type=head_type)))
    return Runner(
        model=model, work_dir=str(work_dir), default_scope='mmreweight',
        train_dataloader=loader(train_dataset or dict(type='CleanSplit', part='train',
                                                      dataset=TOY, **SPLIT), infinite=True),
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[hook], log_processor=dict(by_epoch=False), randomness=dict(seed=0),
        resume=resume, load_from=load_from)


def mwnet_hook(**kwargs):
    return dict(type='MetaReweightHook',
                weighter=dict(type='MetaWeightNetWeighter',
                              optim_wrapper=dict(type='OptimWrapper', optimizer=dict(
                                  type='Adam', lr=1e-2))),
                clean_dataloader=loader(dict(type='CleanSplit', part='clean', dataset=TOY,
                                             **SPLIT)), **kwargs)


def hook_of(runner):
    return next(h for h in runner.hooks if isinstance(h, MetaReweightHook))


def test_mwnet_trains_logs_and_resumes_exactly(tmp_path):
    straight = make_runner(tmp_path / 'a', 3, mwnet_hook())
    straight.train()
    hook = hook_of(straight)
    vnet = copy.deepcopy(hook.weighter.vnet.state_dict())
    assert hook.weighter.last_hypergrad is not None
    for key in ('meta_w_pos', 'meta_w_neg', 'meta_w_zero_frac', 'meta_w_noisy', 'meta_w_clean',
                'meta_clean_loss', 'meta_hypergrad_log10'):
        assert f'train/{key}' in straight.message_hub.log_scalars, key
    assert straight.model.bbox_head.weighter is None  # detached after training

    # the checkpoint carries the VNet and its optimizer (Adam moments)
    ckpt = torch.load(tmp_path / 'a' / 'iter_3.pth', map_location='cpu', weights_only=False)
    saved = ckpt[CHECKPOINT_KEY]
    assert saved['type'] == 'MetaWeightNetWeighter'
    for k, v in vnet.items():
        assert torch.equal(saved['state']['vnet'][k], v)
    assert saved['state']['optim_wrapper']['state'][0]['exp_avg'].abs().sum() > 0
    assert not any('vnet' in k for k in ckpt['state_dict'])  # not part of the detector

    # two iterations, then resume for one more: same VNet, same Adam state, same detector
    make_runner(tmp_path / 'b', 2, mwnet_hook()).train()
    resumed = make_runner(tmp_path / 'b', 3, mwnet_hook(), resume=True)
    weighter = hook_of(resumed).weighter
    resumed.train()
    for k, v in vnet.items():
        assert torch.allclose(weighter.vnet.state_dict()[k], v, atol=1e-6), k
    adam = weighter.optim_wrapper.optimizer.state_dict()['state']
    for i, s in saved['state']['optim_wrapper']['state'].items():
        assert torch.allclose(adam[i]['exp_avg'], s['exp_avg'], atol=1e-6)
        assert int(adam[i]['step']) == int(s['step']) == 3
    for (k, a), b in zip(resumed.model.state_dict().items(), straight.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), k


def test_resume_refuses_a_checkpoint_without_this_weighters_state(tmp_path):
    """Resuming continues the schedule, so a fresh weighter would lose the run's meta state: an
    error. load_from (a new run from the detector weights) starts the weighter fresh."""
    l2rw = dict(type='MetaReweightHook', weighter=dict(type='L2RWWeighter'),
                clean_dataloader=loader(dict(type='CleanSplit', part='clean', dataset=TOY,
                                             **SPLIT)))
    make_runner(tmp_path / 'l2rw', 2, l2rw).train()
    make_runner(tmp_path / 'plain', 2, dict(type='EmptyCacheHook')).train()
    for name, found in (('l2rw', 'L2RWWeighter state'), ('plain', 'no weighter state')):
        ckpt = str(tmp_path / name / 'iter_2.pth')
        resumed = make_runner(tmp_path / f'{name}_resumed', 3, mwnet_hook(), resume=True,
                              load_from=ckpt)
        with pytest.raises(RuntimeError, match=f'cannot resume, the checkpoint holds {found}'):
            resumed.train()

        make_runner(tmp_path / f'{name}_loaded', 1, mwnet_hook(), load_from=ckpt).train()
        saved = torch.load(tmp_path / f'{name}_loaded' / 'iter_1.pth', map_location='cpu',
                           weights_only=False)[CHECKPOINT_KEY]
        assert saved['type'] == 'MetaWeightNetWeighter'
        assert [int(s['step']) for s in saved['state']['optim_wrapper']['state'].values()] == [
            1] * len(saved['state']['optim_wrapper']['state'])  # one meta step, from scratch


def test_l2rw_interval_and_forward_once(tmp_path):
    hook = dict(type='MetaReweightHook', weighter=dict(type='L2RWWeighter'), interval=2, begin=1,
                clean_dataloader=loader(dict(type='CleanSplit', part='clean', dataset=TOY,
                                             **SPLIT)))
    runner = make_runner(tmp_path, 4, hook)
    weighter = hook_of(runner).weighter
    calls, weighted = [], []
    prepare = weighter.prepare_clean
    weighter.prepare_clean = lambda *a: (calls.append(runner.iter), prepare(*a))
    weighter.register_forward_hook(lambda *a: weighted.append(runner.iter))
    forwards = []
    runner.model.backbone.register_forward_hook(
        lambda m, a, o: forwards.append(a[0].shape[0]) if torch.is_grad_enabled() else None)
    runner.train()
    assert calls == [1, 3]  # from `begin`, every `interval`
    assert weighted == [1, 2, 3]  # iteration 0 is RetinaHead's unweighted loss
    assert len(forwards) == 4  # the training batch is forwarded once per iteration
    assert 'train/meta_align_pos_frac' in runner.message_hub.log_scalars


def test_clean_split_is_seeded_balanced_and_disjoint():
    data = ToyMetaDataset(num=40)
    a = split_clean_indices(data, num=9, seed=3)
    assert (a == split_clean_indices(data, num=9, seed=3)
            != split_clean_indices(data, num=9, seed=4))
    classes = [{i['bbox_label'] for i in data.get_data_info(j)['instances']} for j in a]
    for c in range(3):
        assert sum(c in s for s in classes) >= 3  # every class is represented
    assert len(split_clean_indices(data, fraction=0.1)) == 4
    train = CleanSplit(TOY, 'train', **SPLIT)
    clean = CleanSplit(TOY, 'clean', **SPLIT)
    assert len(train) + len(clean) == 12
    paths = {train.get_data_info(i)['img_path'] for i in range(len(train))}
    assert not paths & {clean.get_data_info(i)['img_path'] for i in range(len(clean))}
    with pytest.raises(ValueError, match='exactly one'):
        split_clean_indices(data)


def test_bad_input_errors(tmp_path):
    with pytest.raises(ValueError, match='interval'):
        MetaReweightHook(weighter=dict(type='L2RWWeighter'), clean_dataloader={}, interval=0)
    with pytest.raises(ValueError, match='begin'):
        MetaReweightHook(weighter=dict(type='L2RWWeighter'), clean_dataloader={}, begin=-1)
    with pytest.raises(ValueError, match='clean subset'):
        MetaReweightHook(weighter=dict(type='MetaWeightNetWeighter'))
    # a stock head
    with pytest.raises(TypeError, match='RetinaHead cannot take per-anchor weights'):
        make_runner(tmp_path / 'a', 1, mwnet_hook(), head_type='RetinaHead').train()
    # a clean subset that overlaps the training images
    overlapping = mwnet_hook()
    overlapping['clean_dataloader'] = loader(TOY)
    with pytest.raises(ValueError, match='overlaps the training set'):
        make_runner(tmp_path / 'b', 1, overlapping).train()
    # a clean batch without annotated objects
    empty = mwnet_hook()
    empty['clean_dataloader'] = loader(dict(type='ToyMetaDataset', num=4, seed=7, empty=True))
    with pytest.raises(ValueError, match='empty clean batch'):
        make_runner(tmp_path / 'c', 1, empty).train()
    # fewer clean images than one batch, with drop_last: no batch would ever come
    starved = mwnet_hook()
    starved['clean_dataloader'] = dict(loader(dict(type='ToyMetaDataset', num=1, seed=7)),
                                       drop_last=True)
    with pytest.raises(ValueError, match=r'a process gets no clean batch from the 1 clean '
                       r'images \(batch_size 2, drop_last True, 1 processes\)'):
        make_runner(tmp_path / 'd', 1, starved).train()
    # a clean subset whose class list is not the head's
    other_classes = mwnet_hook()
    other_classes['clean_dataloader'] = loader(dict(type='ToyMetaDataset', num=4, seed=7,
                                                    metainfo=dict(classes=('a', 'b'))))
    with pytest.raises(ValueError, match=r'the clean subset \(ToyMetaDataset\) has 2 classes'):
        make_runner(tmp_path / 'e', 1, other_classes).train()


def test_next_clean_refuses_to_wait_for_a_loader_without_batches():
    hook = MetaReweightHook(weighter=dict(type='L2RWWeighter'), clean_dataloader={})
    hook.clean_dataloader = Runner.build_dataloader(
        dict(loader(dict(type='ToyMetaDataset', num=1)), drop_last=True), seed=0)
    with pytest.raises(ValueError, match='yields no batch'):
        hook._next_clean()
