"""Hardware checks: every line (serial port, I2C bus, GPIO chip, Modbus TCP connection) opens, and
every enabled device answers one poll, through the drivers and pollers the service uses."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from ..bus import LINE_KINDS, BusPool
from ..config.schema import AgentConfig
from ..once import OnceRig, scratch_state
from .report import Check, fail, ok

OPEN_TIMEOUT_S = 10.0


def line_where(line) -> str:
    """Where a line goes: its port, host:port, chip or bus number."""
    if str(getattr(line, "backend", "")) == "sim":
        return "simulated"
    if getattr(line, "port", None) is not None and getattr(line, "host", None) is not None:
        return f"{line.host}:{line.port}"
    for key, fmt in (("port", "{}"), ("chip", "{}"), ("bus", "/dev/i2c-{}")):
        value = getattr(line, key, None)
        if value is not None:
            return fmt.format(value)
    return line.type


def _line_hint(kind: str, error: str) -> str:
    text = error.lower()
    if "permission" in text:
        group = {"i2c": "i2c", "gpio": "gpio"}.get(kind, "dialout")
        return f"add the service user to the {group} group (and log in again)"
    if kind in ("modbus_tcp", "modbus_rtu_over_tcp"):
        return "check the device or gateway is powered, its IP address and port, and the network"
    if kind == "i2c":
        return "enable I2C (raspi-config → Interface Options) and check the bus number"
    if kind == "gpio":
        return "check the gpio chip path (`gpiodetect`) and that no other program holds the pins"
    if kind == "ocpp":
        return "the listen port is taken or not allowed: choose another port"
    return "check the adapter is plugged in and the port path (`ls -l /dev/serial/by-id/`)"


async def _open_line(pool: BusPool, name: str) -> str | None:
    try:
        async with asyncio.timeout(OPEN_TIMEOUT_S):
            await pool.get(name).open()
    except TimeoutError:
        return f"did not open within {OPEN_TIMEOUT_S:g} s"
    except Exception as e:  # noqa: BLE001 - every bus error is reported, none stops the doctor
        return f"{type(e).__name__}: {e}"
    return None


async def check_lines(cfg: AgentConfig) -> list[Check]:
    out: list[Check] = []
    pool = BusPool(cfg.lines, LINE_KINDS)
    try:
        for name, line in cfg.lines.items():
            subject = f"line {name} ({line.type} {line_where(line)})"
            error = await _open_line(pool, name)
            out.append(ok(subject, "opens") if error is None else fail(subject, error, _line_hint(line.type, error)))
    finally:
        await pool.close()
    return out


async def check_devices(cfg: AgentConfig, broken_lines: frozenset[str] = frozenset()) -> list[Check]:
    """One poll of every enabled device; the state directory is only read (see agent.once).
    A device on a line in ``broken_lines`` (which did not open) is told to fix that line first."""
    out: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="edge-agent-doctor-") as tmp:
        rig = OnceRig(cfg, scratch_state(cfg.gateway.state_dir, Path(tmp)))
        rig.make_pollers(lambda _device, _batch: None)
        try:
            await rig.poll()
        finally:
            await rig.close()
    for p in rig.pollers:
        h = p.health
        subject = f"device {p.name} ({p.config.type})"
        if h.up:
            out.append(ok(subject, f"answered one poll: {h.readings} reading(s) in {h.last_latency_s * 1000:.0f} ms"))
        else:
            on = ", ".join(p.config.lines_used())
            if broken_lines.intersection(p.config.lines_used()):
                hint = f"fix line {on} first (above)"
            elif on:
                hint = f"check wiring, address/unit id and settings of line {on}"
            else:
                hint = "check the device's settings and the file or address it names"
            out.append(fail(subject, h.last_error, hint))
    for dev in cfg.devices:
        if not dev.enabled:
            out.append(ok(f"device {dev.name} ({dev.type})", "disabled in the config: not polled"))
    return out
