"""Test vectors for docs/firmware-bridge.md, generated from the codec (``python -m firmware_bridge.vectors``)."""

from __future__ import annotations

from . import codec as c

VECTORS: list[tuple[c.Message, int | None]] = [
    (c.Hello(node_id=0x0A0B0C0D, boot_id=0x12345678, interval_ms=1000, ring_capacity=64, n_metrics=3,
             fw_version="1.0.0"), None),
    (c.Metric(index=0, scale=-2, kind=c.Kind.GAUGE, name="temperature", unit="degC"), None),
    (c.Data(boot_id=0x12345678, seq=1, node_ms=5000, values=((0, 2150), (1, -7))), None),
    (c.Ack(boot_id=0x12345678, seq=1), None),
    (c.Ack(boot_id=0x12345678, seq=1), 7),
    (c.TimeReq(token=42), None),
    (c.TimeResp(token=42, boot_id=0x12345678, node_ms=5012, oldest_seq=2, dropped=0), None),
    (c.Command(id=1, op=c.Op.SET_INTERVAL, target=0, value=500), None),
    (c.Result(id=1, status=c.Status.OK, value=500), None),
    (c.Log(level=2, text="boot"), None),
    # the largest body: an addressed LOG with the full 246-byte text (250 bytes, 254 on the wire)
    (c.Log(level=1, text="x" * c.MAX_LOG), 3),
]


def render() -> str:
    """One line per vector: the canonical text form, then the wire bytes in hex."""
    lines = []
    for msg, addr in VECTORS:
        lines.append(c.canonical(c.Frame(addr, msg)))
        lines.append("    " + c.encode(msg, addr).hex(" "))
    return "\n".join(lines)


if __name__ == "__main__":
    print(render())
