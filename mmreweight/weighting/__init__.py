"""mmreweight.weighting."""
from .mentornet import MentorNetWeighter  # noqa: F401,E402
