"""Kernel compilation shim: numba.njit with an on-disk cache when numba is there, identity otherwise.

Kernels are plain Python functions over numpy arrays and scalars. With numba they are compiled once
and cached in the state directory; without numba (32-bit Pi OS) or with ``NUMBA_DISABLE_JIT=1`` the
very same functions run as Python, so results are identical by construction.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

F = TypeVar("F", bound=Callable)

CACHE_SUBDIR = "numba-cache"


def configure_cache(state_dir: Path | None) -> Path | None:
    """Point numba's cache at ``state_dir/numba-cache`` (before the kernels are imported).

    An operator's own ``NUMBA_CACHE_DIR`` wins. Returns the cache directory in use, or None when no
    writable directory is available (numba then falls back to its default locations or to compiling
    without a cache; never an error).
    """
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return Path(env)
    if state_dir is None:
        return None
    d = Path(state_dir) / CACHE_SUBDIR
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(d)
    cfg = sys.modules.get("numba.core.config")
    if cfg is not None:  # numba already imported: its config read the environment at import time
        cfg.CACHE_DIR = str(d)
    return d


def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def jit_enabled() -> bool:
    """True when kernels are really compiled (numba importable and JIT not disabled)."""
    if not numba_available():
        return False
    from numba.core import config

    return not config.DISABLE_JIT


def kernel(fn: F) -> F:
    """Compile ``fn`` with numba (cached when a cache location is writable) or return it unchanged."""
    try:
        import numba
    except ImportError:
        return fn
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available" (read-only everywhere)
        return numba.njit(nogil=True)(fn)


def py_func(k: Callable) -> Callable:
    """The plain Python function behind a kernel (the kernel itself when it was never compiled)."""
    return getattr(k, "py_func", k)
