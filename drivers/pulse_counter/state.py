"""Crash-safe persistence of a counter: atomic replace of a small JSON file, fsynced."""

from __future__ import annotations

import json
import os
from pathlib import Path

from agent.contract import DeviceError


def load(path: Path) -> dict[str, int]:
    """Return the saved counters, ``{}`` if none were saved; a damaged file is an error, never a reset."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not all(isinstance(v, int) and v >= 0 for v in data.values()):
            raise ValueError("expected an object of non-negative integers")
    except ValueError as e:
        raise DeviceError(f"counter state {path} is damaged ({e}); fix or remove it to restart from 0") from None
    return data


def save(path: Path, counters: dict[str, int]) -> None:
    """Write to a temporary file, fsync it, rename over the old one and fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(counters, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
