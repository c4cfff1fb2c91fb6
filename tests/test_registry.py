"""mmreweight's registry scope: child of mmdet's, reachable both ways."""
import mmdet.registry as mmdet_registry
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmreweight
from mmreweight import registry


@pytest.mark.parametrize('name', ['MODELS', 'HOOKS', 'LOOPS', 'DATASETS', 'TRANSFORMS', 'METRICS',
                                  'OPTIM_WRAPPERS', 'MODEL_WRAPPERS', 'TASK_UTILS'])
def test_every_registry_is_a_child_of_mmdets(name):
    ours, theirs = getattr(registry, name), getattr(mmdet_registry, name)
    assert ours.scope == 'mmreweight'
    assert ours.parent is theirs
    assert theirs.children['mmreweight'] is ours


def test_mmdet_registry_builds_scoped_names():
    from mmreweight.engine.amp import AutocastOptimWrapper
    wrapper = mmdet_registry.OPTIM_WRAPPERS.get('mmreweight.AutocastOptimWrapper')
    assert wrapper is AutocastOptimWrapper
    # and mmdet's own names stay mmdet's
    assert mmdet_registry.MODELS.get('RetinaHead').__module__.startswith('mmdet.')


def test_default_scope_falls_back_to_mmdet():
    mmreweight.register_all_modules(init_default_scope=True)
    assert DefaultScope.get_current_instance().scope_name == 'mmreweight'
    head = registry.MODELS.build(dict(
        type='RetinaHead', num_classes=3, in_channels=8, feat_channels=8, stacked_convs=1,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1,
                              ratios=[1.0], strides=[8]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder')))
    assert type(head).__name__ == 'RetinaHead'


def test_unknown_type_is_a_clear_error():
    with pytest.raises(KeyError, match='NoSuchLoss'):
        registry.MODELS.build(dict(type='NoSuchLoss'))


def test_repo_configs_declare_the_scope():
    cfg = Config.fromfile('configs/retinanet_focal.py')
    assert cfg.default_scope == 'mmreweight'
    assert cfg.custom_imports['imports'] == ['mmreweight']
