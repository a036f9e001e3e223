"""``edge-agent scan`` recognising SunSpec devices: the ``SunS`` marker, then the model chain."""

from __future__ import annotations

from agent.errors import DeviceTimeout, ProtocolError


async def sunspec_models(bus, unit: int, timeout: float) -> tuple[int, list[int]] | None:
    """(base, model ids in chain order) when ``unit`` speaks SunSpec, else None."""
    from drivers.sunspec.discovery import discover

    try:
        base, chain = await discover(bus, unit, timeout=timeout)
    except (ProtocolError, DeviceTimeout):
        return None
    return base, [f.id for f in chain]


def device_models(chain: list[int]) -> list[int]:
    """The models a config reads: the supported ones, one per family (the first met)."""
    from drivers.sunspec.models import SUPPORTED, family

    out: list[int] = []
    seen: set[str] = set()
    for m in chain:
        if m in SUPPORTED and m != 1 and family(m) not in seen:
            seen.add(family(m))
            out.append(m)
    return out
