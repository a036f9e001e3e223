"""Loading an entry-point group: how drivers, simulators and line kinds are found."""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # (importlib.metadata, with email and zipfile, ≈ 1 MiB: imported when a group is read)
    from importlib.metadata import EntryPoints

T = TypeVar("T")


def group_entry_points(group: str, **match: str) -> EntryPoints:
    """The entry points of ``group``. Every installed distribution's metadata is read once per
    ``sys.path`` (a scan reads each distribution's entry_points.txt: hundreds of files beside a
    system Python), not once per group looked up: start-up looks up several groups."""
    return _installed(tuple(sys.path)).select(group=group, **match)


@lru_cache(maxsize=2)
def _installed(path: tuple[str, ...]) -> EntryPoints:
    from importlib.metadata import entry_points

    return entry_points()


def load_group(group: str, kind: type[T]) -> dict[str, T]:
    """Every entry point of ``group`` loaded and checked to be a ``kind``, by entry-point name, sorted."""
    found: dict[str, T] = {}
    for ep in group_entry_points(group):
        obj = ep.load()
        if not isinstance(obj, kind):
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) in {group} is not a {kind.__name__}")
        found[ep.name] = obj
    return dict(sorted(found.items()))
