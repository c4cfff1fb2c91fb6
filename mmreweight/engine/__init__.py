"""Runner-side components: checkpoint loading, hooks and loops that drive reweighting."""
from .amp import AutocastOptimWrapper, enable_amp
from .checkpoint import install_safe_checkpoint_loading, load_checkpoint_file

install_safe_checkpoint_loading()

__all__ = ['AutocastOptimWrapper', 'enable_amp', 'install_safe_checkpoint_loading',
           'load_checkpoint_file']
