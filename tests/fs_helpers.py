"""A small real filesystem that can be filled: a tmpfs mounted for the test (needs root; the test is
skipped with the reason where mounting is not allowed)."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(directory: Path, size: int) -> Iterator[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem has no byte left; delete it to free the space."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (1024 * 1024, 4096, 1):
            block = b"\0" * size
            while True:
                try:
                    fh.write(block)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    return filler
