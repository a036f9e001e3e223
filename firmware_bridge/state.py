"""What the gateway keeps about a node across restarts, and the node description learned at start.

The state file (``<state_dir>/firmware_bridge/<device>.json``) holds the node's description (so
the device's metrics are known before the node answers) and the acknowledged floor of its current
boot (so readings committed before a gateway restart are recognised as duplicates afterwards).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import serial

from . import codec as c
from .link import Description, NodeLink

log = logging.getLogger("edge_agent.firmware_bridge")


@dataclass(slots=True)
class Saved:
    description: Description | None = None
    boot_id: int | None = None
    floor: int = 0
    committed: tuple[int, ...] = ()  # committed readings above the floor (a gap below them is still open)


class NodeState:
    def __init__(self, path: Path):
        self.path = path
        self._written: tuple | None = None

    def load(self) -> Saved:
        try:
            raw = json.loads(self.path.read_text())
            desc = None
            if raw.get("description"):
                d = raw["description"]
                desc = Description(c.Hello(**d["hello"]), tuple(c.Metric(**m) for m in d["metrics"]))
            return Saved(desc, raw.get("boot_id"), int(raw.get("floor", 0)), tuple(map(int, raw.get("committed", ()))))
        except FileNotFoundError:
            return Saved()
        except (ValueError, TypeError, KeyError) as e:
            log.warning("ignoring unreadable node state %s: %s", self.path, e)
            return Saved()

    def save(self, desc: Description | None, boot_id: int | None, floor: int, committed: tuple[int, ...] = ()) -> None:
        key = (id(desc), boot_id, floor, committed)
        if key == self._written:
            return
        body = {"boot_id": boot_id, "floor": floor, "committed": list(committed),
                "description": {"hello": asdict(desc.hello), "metrics": [asdict(m) for m in desc.metrics]} if desc else None}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, self.path)
        self._written = key


def discover(port: str, *, baudrate: int, addr: int | None, timeout: float) -> Description | None:
    """Ask the node on ``port`` to describe itself (blocking, at most ``timeout`` s); None if it does not."""
    link = NodeLink(addr=addr)
    try:
        ser = serial.serial_for_url(port, baudrate=baudrate, timeout=0.05, write_timeout=1.0)
    except (serial.SerialException, OSError, ValueError) as e:
        log.warning("cannot open %s to ask the node for its description: %s", port, e)
        return None
    with contextlib.closing(ser):
        deadline = time.monotonic() + timeout
        next_ask = 0.0
        while time.monotonic() < deadline and link.description is None:
            if time.monotonic() >= next_ask:
                ser.write(b"\x00" + link.command_frame(c.Op.DESCRIBE, 0, 0)[1])
                next_ask = time.monotonic() + 1.0
            try:
                data = ser.read(4096)
            except (serial.SerialException, OSError):
                return None
            if data:
                link.receive(data, time.monotonic())
    return link.description
