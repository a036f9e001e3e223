"""The line kinds installed in this environment, by their config ``type``.

Each kind is a :class:`~agent.contract.LineKind` registered in the ``edge_agent.lines`` entry-point
group; the built-in kinds (Modbus, serial, I2C, GPIO) register there exactly as a third-party
package would, and driver packages add theirs (the OCPP central system). A kind's package is imported
when its type is looked up: a config imports only the line kinds it uses (the OCPP central system,
with its driver, stays out of a gateway without OCPP chargers); listing the names imports nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from functools import cache

from ..contract.lazy import resolve
from ..contract.lines import LINES_GROUP, LineKind
from ..plugins import group_entry_points, load_group


@cache
def discover_line_kinds() -> dict[str, LineKind]:
    """Every installed line kind, loaded (documentation and listings; a run looks up its own)."""
    return load_group(LINES_GROUP, LineKind)


@cache
def _load(name: str, value: str, path: tuple[str, ...]) -> LineKind:
    """The line kind of one entry point (per ``sys.path``: what is installed may differ)."""
    ep = next(ep for ep in reversed(list(group_entry_points(LINES_GROUP, name=name))) if ep.value == value)
    kind = ep.load()
    if not isinstance(kind, LineKind):
        raise TypeError(f"entry point {name!r} ({value}) in {LINES_GROUP} is not a LineKind")
    return kind


class _InstalledLineKinds(Mapping[str, LineKind]):
    """A read-only view of the installed line kinds: each loaded when first looked up."""

    def __getitem__(self, type_: str) -> LineKind:
        if not isinstance(type_, str):
            raise KeyError(type_)
        eps = list(group_entry_points(LINES_GROUP, name=type_))
        if not eps:
            raise KeyError(type_)
        return _load(type_, eps[-1].value, tuple(sys.path))  # the last one wins, as in load_group

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({ep.name for ep in group_entry_points(LINES_GROUP)}))

    def __len__(self) -> int:
        return len({ep.name for ep in group_entry_points(LINES_GROUP)})


LINE_KINDS: Mapping[str, LineKind] = _InstalledLineKinds()


def line_kind_references(types: Iterable[str]) -> dict[str, str]:
    """``"module:attr"`` of the installed line kind of each type of ``types`` (the one a look-up in
    :data:`LINE_KINDS` loads), for :func:`line_kinds_from_references` in another process."""
    out = {}
    for t in dict.fromkeys(types):
        eps = list(group_entry_points(LINES_GROUP, name=t))
        if eps:
            out[t] = f"{eps[-1].module}:{eps[-1].attr}"  # (an entry point may add spaces and extras)
    return out


class _ReferencedLineKinds(Mapping[str, LineKind]):
    """Line kinds named ``"module:attr"``, each loaded when first looked up (no entry-point scan)."""

    def __init__(self, refs: Mapping[str, str]):
        self._refs = dict(refs)
        self._loaded: dict[str, LineKind] = {}

    def __getitem__(self, type_: str) -> LineKind:
        kind = self._loaded.get(type_)
        if kind is None:
            kind = resolve(self._refs[type_])
            if not isinstance(kind, LineKind):
                raise TypeError(f"{self._refs[type_]} (line kind {type_!r}) is not a LineKind")
            self._loaded[type_] = kind
        return kind

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._refs))

    def __len__(self) -> int:
        return len(self._refs)


def line_kinds_from_references(refs: Mapping[str, str]) -> Mapping[str, LineKind]:
    """The line kinds of ``refs`` (type -> ``"module:attr"``, from :func:`line_kind_references`)."""
    return _ReferencedLineKinds(refs)
