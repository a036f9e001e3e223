"""numba's on-disk cache follows every kernel source, not only the function's own file.

numba keys a cached function on its own source file, while a kernel's build holds the kernels it calls
from other modules (the detector calls pattern novelty's): an edit to only those must not leave the
cached caller running the old code (an editable install, a git pull, a developer's tree).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from agent.processing import jit
import toyk.outer as outer
print(jit.compiled(outer).f())
"""
INNER = "from agent.processing.jit import kernel\n\nCONST = {}\n\n\n@kernel\ndef g():\n    return CONST\n"
OUTER = "from agent.processing.jit import kernel\nfrom toyk.inner import g\n\n\n@kernel\ndef f():\n    return g() * 10\n"


def test_editing_only_a_kernel_another_calls_rebuilds_the_caller(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "toyk"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "inner.py").write_text(INNER.format(1))
    (pkg / "outer.py").write_text(OUTER)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "cache")

    def run() -> str:
        return subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "src")], env=env, capture_output=True,
                              text=True, check=True, timeout=300).stdout.strip()

    assert run() == "10"
    assert list((tmp_path / "cache").rglob("*.nbi")), "nothing was cached"
    (pkg / "inner.py").write_text(INNER.format(2))  # the caller's own file is untouched
    assert run() == "20"
