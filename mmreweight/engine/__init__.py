"""Runner-side components: checkpoint loading, hooks and loops that drive reweighting."""
from .amp import AutocastOptimWrapper, enable_amp
from .checkpoint import install_safe_checkpoint_loading, load_checkpoint_file

install_safe_checkpoint_loading()

__all__ = ['AutocastOptimWrapper', 'enable_amp', 'install_safe_checkpoint_loading',
           'load_checkpoint_file']
from .meta_clean_split import CleanSplit, split_clean_indices  # noqa: F401,E402
from .meta_hook import MetaReweightHook  # noqa: F401,E402
from .class_counts_hook import ClassCountsHook  # noqa: F401,E402
from .dataset_check_hook import DatasetCheckHook  # noqa: F401,E402
from .ghm_state_hook import GHMStateHook  # noqa: F401,E402
from .non_finite_guard import NonFiniteGuardHook  # noqa: F401,E402
from .label_issue_hook import LabelIssueHook  # noqa: F401,E402
