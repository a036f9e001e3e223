"""The run-time process's bytecode cache (``sys.pycache_prefix``, agent.runtime.start)."""

from __future__ import annotations

import os
import sys


def backfill() -> int:
    """Write the cached bytecode of the modules already loaded from source without it in the cache
    (``sys.pycache_prefix``): those Python's start-up imported (site's) before this process could allow
    writing, whatever PYTHONDONTWRITEBYTECODE says, or all imported before the cache was known
    (agent.runtime.beside). Only a start that finds some missing writes anything. Returns how many
    were written."""
    from importlib.util import cache_from_source

    written = 0
    for module in list(sys.modules.values()):
        origin = getattr(getattr(module, "__spec__", None), "origin", None)
        if not getattr(module, "__cached__", None) or not origin or not origin.endswith(".py"):
            continue
        cached = cache_from_source(origin)  # under sys.pycache_prefix, wherever the module found its own
        if os.path.exists(cached):
            continue
        import py_compile

        try:
            py_compile.compile(origin, cfile=cached, doraise=True, optimize=sys.flags.optimize)
            written += 1
        except (py_compile.PyCompileError, OSError):
            pass  # an unwritable cache: this module compiles at every start, as without one
    return written
