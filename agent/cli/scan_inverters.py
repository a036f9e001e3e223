"""``edge-agent scan`` recognising inverters on their vendor's map (drivers/pv_inverter profiles).

Each profile names an identifying read: Huawei's model name at 30000 ("SUN2000-..."), Sungrow's device
type code at input register 4999 (0x0Dxx, 0x0Exx: SH series). A unit that answers it with what the
profile expects is that inverter; any error or other content is not.
"""

from __future__ import annotations

from agent.errors import DeviceException, DeviceTimeout, ProtocolError


async def guess_inverter(bus, unit: int, timeout: float) -> tuple[str | None, str]:
    """(profile name, what was read) of the vendor-map inverter at ``unit``, or (None, "")."""
    from drivers.pv_inverter.profile import load_profile, profile_names

    for name in profile_names():
        ident = load_profile(name).identify
        try:
            regs = await bus.read_registers(unit, fc=ident.fc, address=ident.address, count=ident.count, timeout=timeout)
        except (DeviceException, ProtocolError, DeviceTimeout):
            continue
        ok, seen = ident.matches(regs)
        if ok:
            return name, seen
    return None, ""
