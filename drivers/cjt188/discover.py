"""Finding a meter on a line, for ``edge-agent scan --protocol cjt188``.

The address read (03H, DI 810A, to AA…AA with meter type AAH) is answered by *every* meter on the
line at once: it is valid only with one meter connected (point-to-point, or one meter at a time on
the bench). The reply names the meter's type and address; one read of 901F then shows its values.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.contract import DeviceTimeout, ProtocolError, SerialPort

from . import codec
from .profiles import PROFILES


@dataclass(frozen=True, slots=True)
class Found:
    address: str
    meter_type: int
    profile: str | None  # None: a type no profile reads
    evidence: str


def profile_of(meter_type: int) -> str | None:
    exact = next((name for name, p in PROFILES.items() if p.meter_type == meter_type), None)
    if exact is not None:
        return exact
    try:
        fam = codec.family(meter_type)
    except ProtocolError:
        return None
    return {"water": "water", "heat": "heat", "gas": "gas"}[fam]


def _is_address_reply(raw: bytes) -> bool:
    try:
        return codec.decode(raw).control == codec.Control.READ_ADDRESS | codec.REPLY
    except ProtocolError:
        return False


async def read_address(port: SerialPort, *, timeout: float) -> tuple[int, str]:
    """(meter type, address) of the one meter on the line. DeviceTimeout: no meter (or wrong
    settings); ProtocolError: a garbled answer, typically several meters answering at once."""
    raw = await port.transact(codec.address_request(), read_until=codec.scan, accept=_is_address_reply, timeout=timeout)
    assert raw is not None
    f = codec.decode(raw)
    assert f.meter_type is not None
    return f.meter_type, codec.format_address(f.address)


async def probe(port: SerialPort, meter_type: int, address: str, *, timeout: float) -> Found | None:
    """One 901F read; None when the meter is silent."""
    profile = profile_of(meter_type)
    wire = codec.parse_address(address)

    def ours(raw: bytes) -> bool:
        return codec.fr.reply_from(codec.LAYOUT, raw, wire) is not None

    try:
        scan = codec.reply_scan(wire, PROFILES[profile].family) if profile is not None else codec.scan
        raw = await port.transact(codec.read_request(meter_type, wire, 0), read_until=scan, accept=ours,
                                  timeout=timeout)
        assert raw is not None
        if profile is None:
            return Found(address, meter_type, None, "answers; no profile reads this meter type")
        r = codec.parse_read_reply(codec.decode(raw), PROFILES[profile].family)
    except DeviceTimeout:
        return None
    except ProtocolError as e:  # MeterError included
        return Found(address, meter_type, profile, f"answers ({e}): check baud, parity, wiring")
    shown = ", ".join(f"{k}={v:g}" for k, v in r.values.items() if k in ("volume", "heat"))
    return Found(address, meter_type, profile, f"{shown}; valve {codec.VALVE_STATES[r.valve]}"
                 f"{', battery low' if r.battery_low else ''}")
