"""mmreweight.models."""
from .reweight_retina_head import ReweightRetinaHead  # noqa: F401
from .level_aware_heads import (JointLevelATSSHead, JointLevelRetinaHead,  # noqa: F401
                                LevelAwareATSSHead, LevelAwareRetinaHead)
