"""What a register spec, a profile and a meter's config do, without pydantic.

The models (:mod:`.codec`, :mod:`.config`) inherit these mixins and validate; the driver reads
either a model or its plain twin (:func:`agent.contract.plain.to_plain`), which carries the same
behaviour and the profile loaded at validation (``loaded_profile``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.contract import MetricSpec
from agent.contract.modbus_values import decode, encode, is_float, register_count

if TYPE_CHECKING:
    from .codec import Profile, ProfileInfo, RegisterSpec


@dataclass(frozen=True, slots=True)
class ProfileError(Exception):
    message: str

    def __str__(self) -> str:
        return self.message


def check_registers(regs: Sequence[Any]) -> None:
    """Names unique; flag targets exist. Raises ValueError naming the offender."""
    seen: set[str] = set()
    for i, r in enumerate(regs):
        if r.name in seen:
            raise ValueError(f"register [{i}] repeats the name {r.name!r}")
        seen.add(r.name)
    for r in regs:
        for f in r.flags:
            if f not in seen:
                raise ValueError(f"register {r.name!r} flags unknown metric {f!r}")


class RegisterBase:
    """Mixin of :class:`~.codec.RegisterSpec`."""

    @property
    def count(self) -> int:
        return register_count(self.type)

    def metric(self) -> MetricSpec:
        return MetricSpec(self.name, self.unit, self.kind, valid_min=self.valid_min, valid_max=self.valid_max)

    def value(self, regs: Sequence[int]) -> float:
        raw = decode(regs, self.type, self.order)
        return float(raw) * self.scale + self.offset

    def raw_for(self, value: float) -> list[int]:
        """Registers a device would hold for ``value`` (rounded for integer types); for simulators."""
        raw = (value - self.offset) / self.scale
        if not is_float(self.type):
            raw = int(round(raw))
        return encode(raw, self.type, self.order)


class ProfileBase:
    """Mixin of :class:`~.codec.Profile`."""

    @property
    def name(self) -> str:
        return self.profile.name

    def resolve(self, *, bases: dict[str, int] | None = None) -> tuple[RegisterSpec, ...]:
        """Registers with base-relative addresses made absolute."""
        bases = bases or {}
        out = []
        for r in self.registers:
            if r.base is None:
                out.append(r)
            else:
                b = bases.get(r.base, self.profile.bases[r.base].default)
                out.append(r.model_copy(update={"address": b + r.address, "base": None}))
        return tuple(out)


class MeterBase:
    """Mixin of :class:`~.config.ModbusMeterConfig`: the registers to read and the request limits.

    ``loaded_profile()`` is the model's :func:`~.codec.load_profile` result; its plain twin carries
    the profile as loaded at validation (``validated_profile``, from ``plain_extras``), so the run time never parses a profile.
    """

    def loaded_profile(self) -> Profile | None:
        return self.__dict__["validated_profile"]

    def profile_info(self) -> ProfileInfo | None:
        prof = self.loaded_profile()
        return None if prof is None else prof.profile

    def resolved_registers(self) -> tuple[RegisterSpec, ...]:
        regs: tuple[RegisterSpec, ...] = ()
        prof = self.loaded_profile()
        if prof is not None:
            bases = {"energy_base": self.energy_base} if self.energy_base is not None else {}
            regs = prof.resolve(bases=bases)
        regs = (*regs, *self.registers)
        if self.metrics is not None:
            wanted = set(self.metrics)
            for r in regs:  # a status register is read too when it flags a wanted metric
                if any(f in wanted for f in r.flags):
                    wanted.add(r.name)
            regs = tuple(r for r in regs if r.name in wanted)
        return regs

    def limits(self) -> tuple[int, int]:
        info = self.profile_info()
        max_regs = self.max_registers or (info.max_registers if info else 125)
        max_gap = self.max_gap if self.max_gap is not None else (info.max_gap if info else 0)
        return max_regs, max_gap
