"""mmreweight: sample reweighting for MMDetection 3.x dense detectors.

Importing the package registers every component into mmreweight's registry scope (children of
mmdet's registries), so ``custom_imports=dict(imports=['mmreweight'])`` is all a config needs.
"""
__version__ = '0.1.0'

from mmdet.utils import register_all_modules as _register_mmdet  # noqa: E402

# Our registries are children of mmdet's; a child can fall back to its parent's components only once
# mmdet's modules have registered them.
_register_mmdet(init_default_scope=False)

from . import registry  # noqa: F401,E402
from . import datasets, engine, losses, models, weighting  # noqa: F401,E402
from .utils import register_all_modules  # noqa: F401,E402
