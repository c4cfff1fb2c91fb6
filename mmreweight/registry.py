"""mmreweight's registry scope.

Every registry is a child of mmdet's, so that:

* configs with ``default_scope='mmreweight'`` see mmreweight's components first and fall back to
  mmdet's (and mmengine's) for everything else;
* plain mmdet configs name ours as ``type='mmreweight.X'`` after
  ``custom_imports=dict(imports=['mmreweight'])``.

``locations`` lets the registry import the modules that register into it on first use, so building
from a config works without importing those modules by hand.
"""
from mmdet.registry import DATA_SAMPLERS as MMDET_DATA_SAMPLERS
from mmdet.registry import DATASETS as MMDET_DATASETS
from mmdet.registry import EVALUATOR as MMDET_EVALUATOR
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmdet.registry import LOOPS as MMDET_LOOPS
from mmdet.registry import METRICS as MMDET_METRICS
from mmdet.registry import MODEL_WRAPPERS as MMDET_MODEL_WRAPPERS
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.registry import OPTIM_WRAPPERS as MMDET_OPTIM_WRAPPERS
from mmdet.registry import OPTIMIZERS as MMDET_OPTIMIZERS
from mmdet.registry import PARAM_SCHEDULERS as MMDET_PARAM_SCHEDULERS
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS
from mmdet.registry import VISUALIZERS as MMDET_VISUALIZERS
from mmengine.registry import Registry

_MODELS = ['mmreweight.losses', 'mmreweight.models', 'mmreweight.weighting']

MODELS = Registry('model', parent=MMDET_MODELS, scope='mmreweight', locations=_MODELS)
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMDET_MODEL_WRAPPERS, scope='mmreweight',
                          locations=['mmreweight.engine'])
TASK_UTILS = Registry('task util', parent=MMDET_TASK_UTILS, scope='mmreweight', locations=_MODELS)
HOOKS = Registry('hook', parent=MMDET_HOOKS, scope='mmreweight', locations=['mmreweight.engine'])
LOOPS = Registry('loop', parent=MMDET_LOOPS, scope='mmreweight', locations=['mmreweight.engine'])
OPTIMIZERS = Registry('optimizer', parent=MMDET_OPTIMIZERS, scope='mmreweight',
                      locations=['mmreweight.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMDET_OPTIM_WRAPPERS, scope='mmreweight',
                          locations=['mmreweight.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMDET_PARAM_SCHEDULERS,
                            scope='mmreweight', locations=['mmreweight.engine'])
DATASETS = Registry('dataset', parent=MMDET_DATASETS, scope='mmreweight',
                    locations=['mmreweight.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMDET_DATA_SAMPLERS, scope='mmreweight',
                         locations=['mmreweight.datasets'])
TRANSFORMS = Registry('transform', parent=MMDET_TRANSFORMS, scope='mmreweight',
                      locations=['mmreweight.datasets'])
# No metrics or visualizers of our own (mmdet's CocoMetric and DetLocalVisualizer serve): these
# scopes exist so that default_scope='mmreweight' finds mmdet's through the parent.
METRICS = Registry('metric', parent=MMDET_METRICS, scope='mmreweight')
EVALUATOR = Registry('evaluator', parent=MMDET_EVALUATOR, scope='mmreweight')
VISUALIZERS = Registry('visualizer', parent=MMDET_VISUALIZERS, scope='mmreweight')
