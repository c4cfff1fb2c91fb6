"""mmreweight.models."""
from .reweight_retina_head import ReweightRetinaHead  # noqa: F401
