"""The training iteration as the runner reports it, for losses whose behaviour follows the
schedule (GHM's warm-up and μ calibration)."""
from typing import Optional

from mmengine.logging import MessageHub


def runner_iteration() -> Optional[int]:
    """The current training iteration, or None outside an mmengine runner.

    mmengine's ``RuntimeInfoHook``, which every runner registers, stores the iteration in the
    current :class:`~mmengine.logging.MessageHub` before each training iteration; a resumed run
    gets it back with the rest of the runner's state, so nothing else needs saving.
    """
    value = MessageHub.get_current_instance().get_info('iter')
    return None if value is None else int(value)


def linear_ramp(iteration: Optional[int], length: int) -> float:
    """``iteration / length`` clipped to [0, 1]: 0 at the first iteration, 1 from ``length`` on.
    1 when ``length`` is 0 or the iteration is unknown (no runner: nothing to warm up)."""
    if length <= 0 or iteration is None:
        return 1.0
    return min(1.0, max(0.0, iteration / length))
