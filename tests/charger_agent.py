"""What the tests of the command path share (tests/test_commands_mqtt.py, tests/test_web.py): an ABB
Terra AC simulator over Modbus TCP with a car plugged in, an agent configuration with it as ``cp1``
(its current limit writable), and the current-limit writes the simulator received.

The simulator itself is the ``charger`` fixture (tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

CURRENT_REGISTER = 0x4100  # ABB Terra AC: current limit, uint32 mA


def charger_config(gateway: str, state: Path, broker, charger_port: int, *, mqtt: str = "", extra: str = "") -> str:
    """Agent config: the gateway, the broker (``mqtt``: more [mqtt] keys), health each second, the
    charger as ``cp1`` with its current limit writable; ``extra`` before the line and device."""
    return f'''
[gateway]
id = "{gateway}"
state_dir = "{state}"
[mqtt]
host = "{broker.host}"
port = {broker.port}
{mqtt}
[health]
interval = 1
{extra}
[lines.lan]
type = "modbus_tcp"
host = "127.0.0.1"
port = {charger_port}
[[devices]]
name = "cp1"
type = "modbus_charger"
line = "lan"
profile = "abb_terra_ac"
writable = ["current_limit"]
'''


def current_writes(sim) -> list[list[int]]:
    """The register pairs written to the current-limit register, in order."""
    return [regs for addr, regs in sim.writes if addr == CURRENT_REGISTER]
