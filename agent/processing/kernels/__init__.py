"""numba kernels (pure functions over numpy arrays; see agent.processing.jit).

Import this package only after ``jit.configure_cache`` so the compiled code is cached in the state
directory. Every kernel walks a batch row by row and keeps per-series state in arrays indexed by
the global series id.
"""

from .counters import MODE_COUNTER, MODE_INTEGRATE, MODE_NONE, MODE_RESTARTS, counter_step
from .detect import DET_COLS, detect_step
from .quality import quality_step
from .window import OUT_F, OUT_I, WIN_F, WIN_I, window_flush, window_step

ALL = (window_step, window_flush, counter_step, quality_step, detect_step)

__all__ = [
    "ALL", "DET_COLS", "MODE_COUNTER", "MODE_INTEGRATE", "MODE_NONE", "MODE_RESTARTS", "OUT_F", "OUT_I", "WIN_F", "WIN_I",
    "counter_step", "detect_step", "quality_step", "window_flush", "window_step",
]
