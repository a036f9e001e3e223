"""Loading an entry-point group: how drivers, simulators and line kinds are found."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TypeVar

T = TypeVar("T")


def load_group(group: str, kind: type[T]) -> dict[str, T]:
    """Every entry point of ``group`` loaded and checked to be a ``kind``, by entry-point name, sorted."""
    found: dict[str, T] = {}
    for ep in entry_points(group=group):
        obj = ep.load()
        if not isinstance(obj, kind):
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) in {group} is not a {kind.__name__}")
        found[ep.name] = obj
    return dict(sorted(found.items()))
