"""Kernel compilation shim: kernels are plain Python functions; numba compiles them on request.

Kernels are plain Python functions over numpy arrays and scalars, marked with :func:`kernel`.
Importing them never imports numba: numba and LLVM cost ~130 MB of memory once loaded, more than
the whole agent otherwise (tests/bench/bench_footprint.py). :func:`compiled` builds numba versions
of a kernel module's functions (cached in the state directory) when the processing rate makes them
worth it; without numba (32-bit Pi OS) or with ``NUMBA_DISABLE_JIT=1`` the very same functions run
as Python, so results are identical by construction.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import sys
import time
import types
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
    """numba is installed and importable as far as the import system says (checked without importing it)."""
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # a broken install, or an import blocker
        return False


def jit_disabled_by_env() -> bool:
    return os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")


def kernel(fn: F) -> F:
    """Mark ``fn`` as a kernel; it stays a plain Python function until :func:`compiled` builds it."""
    fn.__edge_kernel__ = True  # type: ignore[attr-defined]
    return fn


_COMPILED: dict[str, types.SimpleNamespace] = {}


def compiled(module: types.ModuleType) -> types.SimpleNamespace:
    """The module's namespace with every kernel replaced by a numba dispatcher (cached on disk when a
    cache location is writable). Kernels calling kernels resolve each other inside that namespace;
    the module itself keeps its plain functions. Imports numba (ImportError when it is missing)."""
    done = _COMPILED.get(module.__name__)
    if done is not None:
        return done
    import numba

    with _cache_for_sources(module):
        done = _COMPILED[module.__name__] = _build(module, numba)
    return done


def _build(module: types.ModuleType, numba: types.ModuleType) -> types.SimpleNamespace:
    ns = dict(vars(module))
    for name, obj in vars(module).items():
        if getattr(obj, "__edge_kernel__", False):
            if obj.__module__ != module.__name__:  # a kernel imported from another kernel module: its own build
                ns[name] = getattr(compiled(sys.modules[obj.__module__]), obj.__name__)
                continue
            fn = types.FunctionType(obj.__code__, ns, obj.__name__, obj.__defaults__, obj.__closure__)
            fn.__qualname__, fn.__module__, fn.__doc__ = obj.__qualname__, obj.__module__, obj.__doc__
            try:
                ns[name] = numba.njit(cache=True, nogil=True)(fn)
            except RuntimeError:  # "cannot cache function ...: no locator available" (read-only everywhere)
                ns[name] = numba.njit(nogil=True)(fn)
    return types.SimpleNamespace(**ns)


@functools.cache
def sources_key(package_dir: Path) -> str:
    """Identifies the kernel sources of a package: every module's name and bytes."""
    h = hashlib.sha256()
    for p in sorted(Path(package_dir).glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _cache_for_sources(module: types.ModuleType):
    """numba keys a cached function on its own source file only, while a kernel's build holds the
    kernels it calls from other modules: edit only those and the cached build would run the old code.
    So each version of the kernel sources caches in a directory of its own under the cache in use."""
    from numba.core import config

    base = config.CACHE_DIR
    if not base or not getattr(module, "__file__", None) or os.path.basename(base).startswith("src-"):
        yield  # numba's default places (beside the sources), or already keyed (a kernel module's kernels)
        return
    config.CACHE_DIR = os.path.join(base, f"src-{sources_key(Path(module.__file__).parent)}")
    try:
        yield
    finally:
        mark_used(Path(config.CACHE_DIR))
        config.CACHE_DIR = base


USED_STAMP_S = 86_400  # mark_used() restamps a build at most once a day


def mark_used(d: Path) -> None:
    """Stamp a kernel build directory as used (its mtime; aot.prune keeps what starts used lately), at most
    once a day: a start within the day writes nothing, so a second `edge-agent setup` changes nothing."""
    with contextlib.suppress(OSError):
        if d.stat().st_mtime < time.time() - USED_STAMP_S:
            os.utime(d)


_MADV_PAGEOUT = 21  # Linux >= 5.4


def page_out_compiler() -> int:
    """Ask the kernel to drop LLVM's code pages (libllvmlite, ~68 MB resident once numba has compiled or
    loaded the kernels). Running compiled kernels does not execute LLVM, so the pages stay out until
    something is compiled again; they are clean file pages, re-read on demand. Returns the bytes
    advised; 0 where unsupported (not Linux, old kernel), never an error."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        total = 0
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 5 and "libllvmlite" in fields[5]:
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    if madvise(start, end - start, _MADV_PAGEOUT) == 0:
                        total += end - start
        return total
    except (OSError, AttributeError, ValueError):
        return 0


def py_func(k: Callable) -> Callable:
    """The plain Python function behind a kernel (the kernel itself when it was never compiled)."""
    return getattr(k, "py_func", k)
