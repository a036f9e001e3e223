"""The driver contract and the line registry, as a driver author and a config writer meet them.

- drivers import only ``agent.contract`` (simulators also ``agent.simkit`` and other drivers' simulators); the transport layer
  imports no driver and no simulator;
- a package adds a line kind through the ``edge_agent.lines`` entry points, and an emulated I2C
  chip through ``edge_agent.i2c_emulators``, without the core naming either;
- a device fits any line of its bus family (a GPIO device on a simulated GPIO line), and a device on
  the wrong kind of line is refused naming the line types that would fit.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.bus.kinds import discover_line_kinds
from agent.config import load_config_text
from agent.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (imports inside functions too), made absolute."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
    return found


def first_party(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in ("agent", "drivers")}


@pytest.mark.parametrize("path", sorted((ROOT / "drivers").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_drivers_import_only_the_contract_and_their_own_package(path: Path) -> None:
    family = path.relative_to(ROOT).parts[1] if len(path.relative_to(ROOT).parts) > 2 else None
    allowed = ("agent.contract", f"drivers.{family}", "drivers.charger_common", "drivers.meter_common")
    simulator = path.stem in ("sim", "station", "simmodel")  # may use the simulation kit and other simulators
    if simulator:
        allowed += ("agent.simkit",)
    bad = sorted(m for m in first_party(imported_modules(path))
                 if m != "drivers" and not any(m == a or m.startswith(a + ".") for a in allowed)
                 and not (simulator and re.fullmatch(r"drivers\.\w+\.sim", m)))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}; drivers may import agent.contract only"


@pytest.mark.parametrize("path", sorted((ROOT / "agent" / "bus").glob("*.py")), ids=lambda p: p.name)
def test_the_transport_layer_imports_no_driver_and_no_simulator(path: Path) -> None:
    bad = sorted(m for m in imported_modules(path) if m.startswith(("drivers", "agent.simkit")))
    assert not bad, f"agent/bus/{path.name} imports {bad}"


def test_the_contract_imports_nothing_of_the_core_but_the_data_model_and_errors() -> None:
    for path in sorted((ROOT / "agent" / "contract").glob("*.py")):
        bad = sorted(m for m in first_party(imported_modules(path))
                     if not m.startswith("agent.contract") and m not in ("agent.model", "agent.errors"))
        assert not bad, f"{path.name} imports {bad}"


def write_dist(root: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    """A minimal installed distribution (dist-info + modules) under ``root``."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for mod, text in modules.items():
        (root / f"{mod}.py").write_text(textwrap.dedent(text))


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install throwaway distributions for one test; line kinds are rediscovered around it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    discover_line_kinds.cache_clear()
    yield tmp_path
    discover_line_kinds.cache_clear()
    for mod in [m for m in sys.modules if m.startswith("thirdparty_")]:
        del sys.modules[mod]


THIRD_PARTY_LINE = """
    from typing import ClassVar, Literal
    from agent.contract import LineConfig, LineKind, SERIAL_BUS

    class LoopbackLine(LineConfig):
        BUS: ClassVar[str | None] = SERIAL_BUS
        type: Literal["loopback_uart"]
        echo: bool = True

    class LoopbackBus:
        def __init__(self, name, config):
            self.name, self.config = name, config
        async def open(self): ...
        async def close(self): ...

    LINE = LineKind(LoopbackLine, LoopbackBus, "A serial port that echoes (tests)")
"""


def test_a_package_adds_a_line_kind_through_the_entry_points(installed) -> None:
    write_dist(installed, "thirdparty_lines", """
        [edge_agent.lines]
        loopback_uart = thirdparty_loopback:LINE
    """, {"thirdparty_loopback": THIRD_PARTY_LINE})
    cfg = load_config_text("""
        [gateway]
        id = "gw"
        [lines.uart]
        type = "loopback_uart"
        [[devices]]
        name = "pm"
        type = "pms5003"
        line = "uart"
    """.replace("\n        ", "\n"), env={})
    assert type(cfg.lines["uart"]).__name__ == "LoopbackLine"
    from agent.bus import BusPool

    assert type(BusPool(cfg.lines).get("uart")).__name__ == "LoopbackBus"
    from agent.docgen import render

    assert '### type = "loopback_uart"' in render()


def test_i2c_sim_hosts_any_chip_a_package_registers(installed, tmp_path) -> None:
    write_dist(installed, "thirdparty_chips", """
        [edge_agent.i2c_emulators]
        sht_fake = thirdparty_chip:FakeChip
    """, {"thirdparty_chip": """
        class FakeChip:
            def __init__(self, *, address=0x44, vary=True):
                self.address, self.vary = address, vary
    """})
    from agent.bus import BusPool

    cfg = load_config_text('[gateway]\nid = "gw"\n[lines.i2c]\ntype = "i2c_sim"\nchip = "sht_fake"\naddress = 0x45\n')
    bus = BusPool(cfg.lines).get("i2c")
    assert bus._open_transport().address == 0x45

    with pytest.raises(ConfigError) as exc:
        load_config_text('[gateway]\nid = "gw"\n[lines.i2c]\ntype = "i2c_sim"\nchip = "nope"\n')
    assert "no emulated I2C chip named 'nope'" in str(exc.value)
    assert "bme680" in str(exc.value) and "sht_fake" in str(exc.value)


def test_a_gpio_device_fits_a_simulated_gpio_line() -> None:
    cfg = load_config_text("""
[gateway]
id = "gw"
[lines.gpio]
type = "gpio_sim"
pulse_hz = { 17 = 2.0 }
[[devices]]
name = "s0"
type = "pulse_counter"
line = "gpio"
pin = 17
""")
    assert cfg.devices[0].line == "gpio"


def test_a_device_on_the_wrong_kind_of_line_is_refused_naming_the_types_that_fit() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config_text("""
[gateway]
id = "gw"
[lines.uart]
type = "serial"
port = "/dev/ttyUSB0"
[[devices]]
name = "meter"
type = "modbus_meter"
line = "uart"
profile = "sdm630"
""")
    text = str(exc.value)
    assert "devices[0] (meter).line" in text
    assert "'serial' line" in text and "needs a modbus line" in text
    assert "'modbus_rtu'" in text and "'modbus_tcp'" in text and "'modbus_rtu_over_tcp'" in text


def test_every_built_in_line_hands_drivers_the_handle_its_bus_family_promises(tmp_path) -> None:
    from agent.bus import BusPool
    from agent.contract import GpioLine, I2cLine, ModbusLine, SerialPort

    cfg = load_config_text(f"""
[gateway]
id = "gw"
[lines.rtu]
type = "modbus_rtu"
port = "{tmp_path}/ttyA"
[lines.tcp]
type = "modbus_tcp"
host = "127.0.0.1"
[lines.gw]
type = "modbus_rtu_over_tcp"
host = "127.0.0.1"
[lines.uart]
type = "serial"
port = "{tmp_path}/ttyB"
[lines.i2c]
type = "i2c"
[lines.i2c-sim]
type = "i2c_sim"
chip = "bme680"
[lines.gpio]
type = "gpio"
[lines.gpio-sim]
type = "gpio_sim"
""", env={})
    protocols = {"modbus": ModbusLine, "serial": SerialPort, "i2c": I2cLine, "gpio": GpioLine}
    pool = BusPool(cfg.lines)  # building a bus opens nothing
    for name, line in cfg.lines.items():
        assert isinstance(pool.get(name), protocols[type(line).BUS]), (name, type(pool.get(name)).__name__)


def test_a_config_imports_only_the_drivers_it_uses(tmp_path) -> None:
    """Import what a config uses: validating a config of Modbus meters loads no other driver's package
    (each costs memory for as long as the agent runs)."""
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[gateway]\nid = "gw"\n[lines.m]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = 5020\n'
                   '[[devices]]\nname = "m1"\ntype = "modbus_meter"\nprofile = "sdm630"\nline = "m"\n')
    code = ("import sys\nfrom pathlib import Path\nfrom agent.config import load_config\n"
            f"load_config(Path({str(cfg)!r}))\n"
            "print(' '.join(sorted({m.split('.')[1] for m in sys.modules if m.startswith('drivers.')})))\n"
            "print('firmware_bridge' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    loaded, fwb = p.stdout.splitlines()
    assert fwb == "False"
    # the meter's own package (and what the built-in line kinds bring: the OCPP line's charger code)
    assert set(loaded.split()) <= {"modbus_meter", "meter_common", "ocpp_charger", "charger_common"}, loaded
