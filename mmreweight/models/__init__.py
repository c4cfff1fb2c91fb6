"""mmreweight.models."""
from .reweight_retina_head import ReweightRetinaHead  # noqa: F401
from .level_aware_heads import LevelAwareATSSHead, LevelAwareRetinaHead  # noqa: F401
