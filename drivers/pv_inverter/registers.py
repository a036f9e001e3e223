"""What an inverter profile does, without pydantic: decoding registers, a point's writes, block reads,
and a device's bounds and points. The profile models (:mod:`.profile`) and the device config
(:mod:`.config`) inherit these mixins; the run time reads their plain twins, the config's carrying
the profile loaded at validation (``validated_profile``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent.contract import MetricKind, MetricSpec, Point
from agent.contract.modbus_values import DataType, decode, encode, register_count

if TYPE_CHECKING:
    from .profile import PointSpec, Profile, Register, Step


class PointKind(enum.StrEnum):
    SETPOINT = "setpoint"
    BATTERY = "battery"


class IdentifyBase:
    """Mixin of :class:`~.profile.Identify`."""

    def matches(self, regs: Sequence[int]) -> tuple[bool, str]:
        """Whether ``regs`` (read from ``address``) identify the device, and what was seen."""
        if self.text_prefix is not None:
            text = b"".join(w.to_bytes(2, "big") for w in regs).split(b"\0", 1)[0].decode("ascii", "replace").strip()
            return text.startswith(self.text_prefix), f"model {text!r}"
        code = regs[0] if regs else 0
        return (code >> 8) in self.high_byte, f"device type 0x{code:04X}"


class RegisterBase:
    """Mixin of :class:`~.profile.Register`."""

    @property
    def count(self) -> int:
        return register_count(self.type)

    def metric(self) -> MetricSpec:
        return MetricSpec(self.name, self.unit, self.kind, self.description, anomaly=self.kind is MetricKind.GAUGE)

    def value(self, regs: Sequence[int]) -> float:
        return float(decode(regs, self.type, self.order)) * self.scale

    def raw_for(self, value: float) -> list[int]:
        """The registers a device holds for ``value`` (simulators)."""
        raw = value / self.scale
        return encode(raw if self.type in (DataType.FLOAT32, DataType.FLOAT64) else int(round(raw)), self.type, self.order)


class StepBase:
    """Mixin of :class:`~.profile.Step`."""

    def words(self, value: float) -> list[int]:
        """Registers for this step; ValueError when the value does not fit the type."""
        raw = self.value if self.value is not None else int(round(value * self.scale))
        return encode(raw, self.type, self.order)

    def reads(self, regs: Sequence[int]) -> float:
        """The written value back from the registers (simulators)."""
        return float(decode(regs, self.type, self.order)) / self.scale


class PointBase:
    """Mixin of :class:`~.profile.PointSpec`."""

    def largest(self) -> float:
        """The largest magnitude every register a write puts the value into can hold."""
        out = math.inf
        for s in (*self.set, *self.charge, *self.discharge):
            if s.value is None and s.type not in (DataType.FLOAT32, DataType.FLOAT64):
                signed = s.type in (DataType.INT16, DataType.INT32, DataType.INT64)
                out = min(out, ((1 << (16 * register_count(s.type) - signed)) - 1) / abs(s.scale))
        return out

    def steps(self, value: float) -> tuple[Step, ...]:
        if self.kind is PointKind.SETPOINT:
            return self.set
        return self.discharge if value > 0 else self.charge if value < 0 else self.stop


class ProfileBase:
    """Mixin of :class:`~.profile.Profile`."""

    @property
    def name(self) -> str:
        return self.profile.name

    def point(self, name: str) -> PointSpec | None:
        return next((p for p in self.points if p.name == name), None)


class PvInverterBase:
    """Mixin of :class:`~.config.PvInverterConfig`: its points and their bounds. ``loaded_profile()`` is
    the model's :func:`~.profile.load_profile` result; the plain twin carries the profile as loaded at
    validation (``validated_profile``, from ``plain_extras``), so the run time never parses a profile."""

    def loaded_profile(self) -> Profile:
        return self.__dict__["validated_profile"]

    def bounds(self, p: PointSpec) -> tuple[float | None, float | None]:
        high = getattr(self, p.high_from) if p.high_from else p.high
        low = p.low if p.low is not None else (-high if p.kind is PointKind.BATTERY and high is not None else None)
        return low, high

    def points(self) -> list[Point]:
        out = []
        for p in self.loaded_profile().points:
            low, high = self.bounds(p)
            if p.high_from and high is None:
                continue  # no rating configured: the point is not offered
            out.append(Point(p.name, unit=p.unit, low=low, high=high, writable=p.name in self.writable,
                             meaning=p.meaning))
        return out


def selected(profile: Any, metrics: Sequence[str] | None) -> list[Register]:
    """The profile's registers a device reads: those its ``metrics`` name (all of them by default)."""
    wanted = set(metrics or [r.name for r in profile.registers])
    return [r for r in profile.registers if r.name in wanted]


def metrics_for(config: Any) -> list[MetricSpec]:
    """The metrics of a device (``DriverSpec.metrics``, validation's: the driver imports numpy): its
    profile's registers it reads, the unit id resolved as the driver resolves it."""
    profile = config.loaded_profile()
    int(config.unit or profile.profile.default_unit)
    return [r.metric() for r in selected(profile, config.metrics)]


def blocks(regs: Sequence[Register], *, max_registers: int, max_gap: int) -> list[tuple[int, int, int, list[Register]]]:
    """Block reads covering ``regs``: (fc, start, count, registers), neighbours merged when the hole
    between them is at most ``max_gap`` and the block stays within ``max_registers``."""
    out: list[tuple[int, int, int, list[Register]]] = []
    for fc in (3, 4):
        for r in sorted((r for r in regs if r.fc == fc), key=lambda r: r.address):
            if out and out[-1][0] == fc:
                _, start, count, members = out[-1]
                end = r.address + r.count
                if r.address - (start + count) <= max_gap and end - start <= max_registers:
                    out[-1] = (fc, start, max(count, end - start), [*members, r])
                    continue
            out.append((fc, r.address, r.count, [r]))
    return out
