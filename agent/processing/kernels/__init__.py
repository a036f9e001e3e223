"""Processing kernels (pure functions over numpy arrays; see agent.processing.jit).

Importing this package does not import numba: the module attributes are the plain Python kernels.
:func:`kernel_set` returns them, or their numba builds (call ``jit.configure_cache`` first, so the
compiled code is cached in the state directory). Every kernel walks a batch row by row and keeps
per-series state in arrays indexed by the global series id.
"""

from types import ModuleType, SimpleNamespace

from .. import jit
from . import counters, detect, novelty, quality, window
from .counters import MODE_COUNTER, MODE_INTEGRATE, MODE_NONE, MODE_RESTARTS, counter_step
from .detect import DET_COLS, detect_step
from .quality import quality_step
from .window import OUT_F, OUT_I, WIN_F, WIN_I, window_flush, window_step

ENTRY_POINTS = (
    (window, "window_step"), (window, "window_flush"), (counters, "counter_step"), (quality, "quality_step"),
    (detect, "detect_step"),
)


def kernel_set(*, compiled: bool) -> SimpleNamespace:
    """The kernels the processor calls: plain Python, or numba builds (imports numba; ImportError
    when it is missing). Both keep their state in the same arrays, so a processor can switch."""
    fns = {name: getattr(jit.compiled(mod) if compiled else mod, name) for mod, name in ENTRY_POINTS}
    return SimpleNamespace(**fns, OUT_I=OUT_I, OUT_F=OUT_F, compiled=compiled, kind="jit" if compiled else "python")


def aot_kernel_set(module: ModuleType) -> SimpleNamespace:
    """The kernels of an ahead-of-time build (see agent.processing.aot)."""
    fns = {name: getattr(module, name) for _, name in ENTRY_POINTS}
    return SimpleNamespace(**fns, OUT_I=OUT_I, OUT_F=OUT_F, compiled=True, kind="aot")

__all__ = [
    "ENTRY_POINTS", "DET_COLS", "MODE_COUNTER", "MODE_INTEGRATE", "MODE_NONE", "MODE_RESTARTS", "OUT_F", "OUT_I", "WIN_F", "WIN_I",
    "aot_kernel_set", "counter_step", "detect_step", "kernel_set", "novelty", "quality_step", "window_flush", "window_step",
]
