"""The line kinds installed in this environment, by their config ``type``.

Each kind is a :class:`~agent.contract.LineKind` registered in the ``edge_agent.lines`` entry-point
group; the built-in kinds (Modbus, serial, I2C, GPIO) register there exactly as a third-party
package would, and driver packages add theirs (the OCPP central system). Discovery runs once, on
first use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache

from ..contract.lines import LINES_GROUP, LineKind
from ..plugins import load_group


@cache
def discover_line_kinds() -> dict[str, LineKind]:
    return load_group(LINES_GROUP, LineKind)


class _InstalledLineKinds(Mapping[str, LineKind]):
    """A read-only view of the discovered line kinds (discovered when first looked at)."""

    def __getitem__(self, type_: str) -> LineKind:
        return discover_line_kinds()[type_]

    def __iter__(self) -> Iterator[str]:
        return iter(discover_line_kinds())

    def __len__(self) -> int:
        return len(discover_line_kinds())


LINE_KINDS: Mapping[str, LineKind] = _InstalledLineKinds()
