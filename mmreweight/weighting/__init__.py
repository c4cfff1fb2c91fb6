"""mmreweight.weighting."""
from .mentornet import MentorNetWeighter  # noqa: F401,E402
from .l2rw import L2RWWeighter  # noqa: F401,E402
from .mwnet import MetaWeightNetWeighter  # noqa: F401,E402
from .noise_oracle import NoiseOracleWeighter  # noqa: F401,E402
from .label_issues import LabelIssueWeighter  # noqa: F401,E402
