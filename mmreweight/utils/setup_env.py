"""Scope set-up, as mmdet's ``register_all_modules``."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import mmdet's and mmreweight's modules so that every component is registered.

    Args:
        init_default_scope: also make ``mmreweight`` the current default scope, so that registries
            look up mmreweight's components first and fall back to mmdet's and mmengine's.
    """
    from mmdet.utils import register_all_modules as register_mmdet
    register_mmdet(init_default_scope=False)
    import mmreweight  # noqa: F401  (registers everything on import)

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('mmreweight'):
        DefaultScope.get_instance('mmreweight', scope_name='mmreweight')
    elif current.scope_name != 'mmreweight':
        warnings.warn(f'The current default scope "{current.scope_name}" is not "mmreweight"; '
                      'a new scope instance is created and made current.')
        name = f'mmreweight-{datetime.datetime.now()}'
        DefaultScope.get_instance(name, scope_name='mmreweight')
