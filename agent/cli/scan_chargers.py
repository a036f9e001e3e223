"""``scan`` and ``init``: recognise a Modbus charger (drivers/modbus_charger profiles) at a unit id.

A charger answers at its IEC 61851 state register (connector 1). A state encoded as a letter (CHARX,
Phoenix) is evidence enough; a numeric one (ABB, KEBA) reads plausibly from registers that are all
zero too, so those also need a plausible phase voltage.
"""

from __future__ import annotations

from agent.errors import DeviceException, DeviceTimeout, ProtocolError

LETTER_STATES = ("ascii_high", "ascii_low")
VOLTAGE = (80.0, 300.0)


async def guess_charger(bus, unit: int, timeout: float) -> tuple[str | None, str]:
    """(profile name, what was read) of the charger at ``unit``, or (None, "")."""
    from agent.contract.modbus_values import register_count
    from drivers.modbus_charger.profile import decode_state, decode_value, load_profile, profile_names

    for name in profile_names():
        prof = load_profile(name)
        base, fc, spec = prof.offset(1), prof.profile.read_fc, prof.state

        async def read(address: int, count: int, base=base, fc=fc) -> list[int]:
            return await bus.read_registers(unit, fc=fc, address=base + address, count=count, timeout=timeout)
        try:
            regs = await read(spec.address, 1 if spec.encoding in LETTER_STATES else register_count(spec.dtype))
            cable = await read(spec.cable_address, register_count(spec.dtype)) if spec.cable_address is not None else None
            state = decode_state(spec, regs, cable)
            seen = [f"state {state.name}"]
            if spec.encoding not in LETTER_STATES:
                volts = next((v for v in prof.values if v.name == "voltage_l1"), None)
                if volts is None:
                    continue
                v = decode_value(volts, await read(volts.address, volts.count))
                if not VOLTAGE[0] <= v <= VOLTAGE[1]:
                    continue
                seen.append(f"voltage_l1={v:.1f}")
        except (DeviceException, ProtocolError, DeviceTimeout, ValueError):
            continue
        return name, ", ".join(seen)
    return None, ""
