"""Finding meters on a line: the address read and a probe per address, for ``edge-agent scan``.

The address read (13H to AA…AA) is answered by *every* meter on the line at once: it is valid only
with one meter connected (point-to-point, or one meter at a time on the bench). With several
meters the replies collide into garbage; take the addresses from the nameplates and probe them.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.contract import DeviceTimeout, ProtocolError, SerialPort

from . import codec
from .codec import Edition, MeterError
from .profiles import BY_METRIC

ENERGY = BY_METRIC["energy_import"]


@dataclass(frozen=True, slots=True)
class Found:
    address: str
    edition: Edition
    evidence: str


def _is_address_reply(raw: bytes) -> bool:
    try:
        return codec.decode(raw).control == codec.Control.READ_ADDRESS | codec.REPLY
    except ProtocolError:
        return False


async def read_address(port: SerialPort, *, timeout: float) -> str:
    """The address of the one meter on the line. DeviceTimeout: no meter (or wrong settings);
    ProtocolError: a garbled answer, typically several meters answering at once."""
    raw = await port.transact(codec.address_request(), read_until=codec.scan, accept=_is_address_reply, timeout=timeout)
    assert raw is not None
    f = codec.decode(raw)
    if len(f.data) != 6:
        raise ProtocolError(f"address reply carries {len(f.data)} bytes, not 6")
    return codec.format_address(f.data)


async def probe(port: SerialPort, address: str, *, timeout: float) -> Found | None:
    """Ask ``address`` for its forward active energy, in the 2007 then the 1997 edition; None when silent."""
    wire = codec.parse_address(address)
    for edition in (Edition.V2007, Edition.V1997):
        di, fmt = ENERGY.di(edition), ENERGY.fmt(edition)
        assert di is not None and fmt is not None

        def ours(raw: bytes) -> bool:
            return codec.fr.reply_from(codec.LAYOUT, raw, wire) is not None

        try:
            raw = await port.transact(codec.read_request(wire, di, edition), read_until=codec.reply_scan(wire, edition),
                                      accept=ours,
                                      timeout=timeout)
            assert raw is not None
            reply = codec.parse_read_reply(codec.decode(raw), di, edition)
        except DeviceTimeout:
            continue
        except MeterError as e:
            return Found(address, edition, f"answers ({e})")
        except ProtocolError as e:
            return Found(address, edition, f"answers garbled ({e}): check baud, parity, wiring")
        return Found(address, edition, f"energy_import={fmt.decode(reply.data):.2f} kWh")
    return None
