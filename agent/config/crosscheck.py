"""Second validation pass: facts that only the whole file can contradict."""

from __future__ import annotations

from collections import defaultdict

from ..bus.kinds import LINE_KINDS
from ..bus.serial_settings import SerialSettings
from ..contract.modbus import ModbusDevice
from .schema import CoreConfig
from .sections import registered_sections, section_problems


def cross_check(config: CoreConfig) -> list[tuple[tuple, str]]:
    problems = section_problems(config, registered_sections())
    seen: dict[str, int] = {}
    for i, dev in enumerate(config.devices):
        if dev.name in seen:
            problems.append((("devices", i, "name"), f"duplicate device name {dev.name!r} (also devices[{seen[dev.name]}])"))
        else:
            seen[dev.name] = i
        for line in dev.lines_used():
            if line not in config.lines:
                known = ", ".join(sorted(config.lines)) or "none configured"
                problems.append((("devices", i, "line"), f"line {line!r} is not configured under [lines] (known: {known})"))
                continue
            needs, got = type(dev).BUS, type(config.lines[line]).BUS
            if needs is not None and got != needs:
                ltype = config.lines[line].type
                fits = sorted(k for k, kind in LINE_KINDS.items() if kind.config_model.BUS == needs)
                problems.append((("devices", i, "line"), f"line {line!r} is a {ltype!r} line; this device needs a "
                                 f"{needs} line (type {' or '.join(repr(t) for t in fits) or 'none installed'})"))

    # one physical port opened by two lines with different settings
    by_port: dict[str, list[tuple[str, tuple]]] = defaultdict(list)
    for name, line in config.lines.items():
        if isinstance(line, SerialSettings):
            by_port[line.port].append((name, line.serial_identity()))
    for port, users in by_port.items():
        if len(users) > 1:
            settings = {s for _, s in users}
            names = ", ".join(n for n, _ in users)
            if len(settings) > 1:
                msg = f"port {port!r} is opened by lines {names} with different serial settings"
            else:
                msg = f"port {port!r} is opened by two lines ({names}); put the devices on one line"
            problems.append((("lines", users[1][0], "port"), msg))

    # two devices with the same unit id on one line
    units: dict[tuple[str, int], str] = {}
    for i, dev in enumerate(config.devices):
        if not isinstance(dev, ModbusDevice):
            continue
        for line in dev.lines_used():
            key = (line, dev.unit)
            if key in units:
                problems.append((("devices", i, "unit"), f"unit id {dev.unit} on line {line!r} is already used by device {units[key]!r}"))
            else:
                units[key] = dev.name
    return problems
