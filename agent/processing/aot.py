"""Ahead-of-time builds of the kernels: a small C extension that needs neither numba nor LLVM to run.

Compiled kernels normally come from numba's JIT, which keeps numba and LLVM in memory (~50 MB of
anonymous memory plus ~68 MB of LLVM code). An ahead-of-time build (``numba.pycc``) runs as fast and
costs under 1 MB: the agent builds it in a separate process (numba and a C compiler are needed for
the build only) into the kernel cache directory, and loads it when present. Without numba or a
compiler the build fails and the agent falls back to the JIT or to the Python kernels.

``numba.pycc`` is deprecated upstream; it is present in numba 0.68. Each build is stamped with the
kernel sources, numpy, Python and machine, so a stale build is never loaded.

    python -m agent.processing.aot DIR   # build into DIR (what the agent and `edge-agent warmup` run)
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import platform
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

MODULE = "edge_agent_kernels"
BUILD_TIMEOUT_S = 600
UNUSED_DAYS = 7  # prune(): a build of other kernel sources unused this long is deleted

_A1 = {"i4": "i4[:]", "i8": "i8[:]", "f8": "f8[:]", "u4": "u4[:]", "i1": "i1[:]", "b1": "b1[:]"}
_A2 = {"i8": "i8[:, :]", "f8": "f8[:, :]"}

# exported name -> (kernel module, signature), the argument types the processor passes
SIGNATURES: dict[str, tuple[str, str]] = {
    "window_step": ("window", "i8({i4}, {i8}, {f8}, {u4}, {f8}, u4, i8, {i8}, {I8}, {F8}, {I8}, {F8})"),
    "window_flush": ("window", "i8(i8, i8, {i8}, {I8}, {F8}, {I8}, {F8})"),
    "counter_step": ("counters", "void({i4}, {i8}, {f8}, {u4}, {i1}, {f8}, {f8}, {f8}, {i8}, {I8}, {F8}, {f8}, {i8})"),
    "quality_step": ("quality", "void({i4}, {i8}, {f8}, {u4}, i8, {f8}, {f8}, {i8}, {f8}, {f8}, {i8}, {I8}, {F8})"),
    "detect_step": ("detect", "void({i4}, {i8}, {f8}, {u4}, {b1}, {f8}, {f8}, {i8}, {i8}, {F8}, {f8}, {f8}, {i1})"),
}


def _signature(template: str) -> str:
    return template.format(**_A1, I8=_A2["i8"], F8=_A2["f8"])


def stamp() -> str:
    """Identifies a build: every kernel source (as the JIT's cache keys them), numpy, Python and the machine."""
    from . import kernels
    from .jit import sources_key

    h = hashlib.sha256(sources_key(Path(kernels.__file__).parent).encode())
    h.update(f"{np.__version__} {sys.version} {platform.machine()} {sys.platform}".encode())
    return h.hexdigest()[:16]


def build_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / f"aot-{stamp()}"


def load(cache_dir: Path | None) -> types.ModuleType | None:
    """The ahead-of-time kernels built for these sources, or None when there is no such build."""
    if cache_dir is None:
        return None
    d = build_dir(cache_dir)
    found = [p for p in d.glob(f"{MODULE}*") if p.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))]
    if not found:
        return None
    try:
        spec = importlib.util.spec_from_file_location(MODULE, found[0])
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (ImportError, OSError):
        return None
    if not all(hasattr(module, name) for name in SIGNATURES):
        return None
    from .jit import mark_used

    mark_used(d)
    return module


def prune(cache_dir: Path | None, *, now: float | None = None) -> list[str]:
    """Delete the builds of other kernel sources (``aot-*``, and the JIT's ``src-*``) that no start
    has used for UNUSED_DAYS: an upgrade leaves the old version's builds behind (about 2.5 MB each on
    x86-64). The week's grace keeps a build that another version sharing the cache (a rollback, a
    second tree) still uses. Returns the names deleted; never raises."""
    if cache_dir is None:
        return []
    from . import kernels
    from .jit import sources_key

    keep = {f"aot-{stamp()}", f"src-{sources_key(Path(kernels.__file__).parent)}"}
    cutoff = (time.time() if now is None else now) - UNUSED_DAYS * 86_400
    gone = []
    try:
        entries = list(Path(cache_dir).iterdir())
    except OSError:
        return []
    for d in entries:
        try:
            stale = (d.name.startswith(("aot-", "src-")) and d.name not in keep and d.is_dir()
                     and d.stat().st_mtime < cutoff)
        except OSError:
            continue
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d.name)
    return sorted(gone)


def build_in_subprocess(cache_dir: Path) -> str | None:
    """Build in a separate process (numba never enters this one). Returns None on success, else why not."""
    try:
        p = subprocess.run([sys.executable, "-m", "agent.processing.aot", str(build_dir(cache_dir))],
                           capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if p.returncode != 0:
        lines = (p.stderr or p.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit status {p.returncode}"
    return None


def build(out_dir: Path) -> Path:
    """Build the extension into ``out_dir`` (imports numba; needs a C compiler)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba.pycc's deprecation warning
        from numba.pycc import CC

    from . import kernels
    from .jit import compiled

    out_dir.mkdir(parents=True, exist_ok=True)
    cc = CC(MODULE)
    cc.output_dir = str(out_dir)
    cc.verbose = False
    for name, (module, template) in SIGNATURES.items():
        fn = getattr(compiled(getattr(kernels, module)), name).py_func  # helpers resolve to numba builds
        cc.export(name, _signature(template))(fn)
    cc.compile()
    return out_dir


if __name__ == "__main__":
    build(Path(sys.argv[1]))
