"""Counters and health state of a Modbus line and of each unit on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

UNIT_BACKOFF_MIN = 1.0  # a unit's first pause (s) after it stopped answering; doubles up to unit_backoff_max


@dataclass(slots=True)
class UnitState:
    COUNTERS: ClassVar[tuple[str, ...]] = (
        "transactions", "bytes_tx", "bytes_rx", "timeouts", "errors", "exceptions", "skipped",
        "wire_time_estimate_s",
    )
    transactions: int = 0
    bytes_tx: int = 0
    bytes_rx: int = 0
    timeouts: int = 0
    errors: int = 0  # garbled, short or undecodable replies
    exceptions: int = 0  # Modbus exception replies
    skipped: int = 0  # requests refused without touching the wire while backed off
    wire_time: float = 0.0  # estimated seconds of line occupancy (RTU framing)
    failures: int = 0  # consecutive transactions without a reply
    next_probe: float = 0.0  # monotonic time before which the unit is skipped

    def ok(self, now: float) -> None:
        self.failures = 0
        self.next_probe = 0.0

    def fail(self, now: float, *, base: float, cap: float) -> None:
        self.failures += 1
        self.next_probe = now + min(base * 2 ** (self.failures - 1), cap)

    def as_dict(self) -> dict[str, Any]:
        return {
            "transactions": self.transactions, "bytes_tx": self.bytes_tx, "bytes_rx": self.bytes_rx,
            "timeouts": self.timeouts, "errors": self.errors, "exceptions": self.exceptions,
            "skipped": self.skipped, "wire_time_estimate_s": round(self.wire_time, 6),
            "failures": self.failures,
        }


@dataclass(slots=True)
class LineStats:
    opens: int = 0
    open_failures: int = 0
    drops: int = 0
    sent: int = 0  # bytes of the request frames written in the current transaction (trace hook)

    def as_dict(self) -> dict[str, int]:
        return {"opens": self.opens, "open_failures": self.open_failures, "drops": self.drops}
