"""What the run-time process imports while the config is validated beside it (agent.runtime.beside.preload):
the run time, the config's drivers and line kinds with their factories (validation lists a driver's
metrics without building it), and what the start imports after the hand-off."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from agent.runtime.beside import AFTER_HANDOFF, AFTER_HANDOFF_BY_TABLE, after_handoff

ROOT = Path(__file__).resolve().parents[1]


def test_the_modules_imported_after_the_handoff_exist() -> None:
    for name in (*AFTER_HANDOFF, *(m for ms in AFTER_HANDOFF_BY_TABLE.values() for m in ms)):
        importlib.import_module(name)


def test_modules_by_table() -> None:
    assert after_handoff({"gateway": {}}) == list(AFTER_HANDOFF)
    assert "agent.site.controller" in after_handoff({"gateway": {}, "site": {"chargers": ["a"]}})
    assert after_handoff(None) == list(AFTER_HANDOFF)  # an unreadable file: validation says why


def test_preload_imports_the_factories_of_entry_points() -> None:
    code = ("import sys\nfrom agent.runtime.beside import preload\n"
            "preload(['drivers.replay:SPEC', 'drivers.modbus_meter:SPEC', 'agent.bus.builtin:MODBUS_TCP', "
            "'no.such.module:X', 'no_such_module'])\n"
            "print(sorted(m for m in ('drivers.replay.driver', 'drivers.modbus_meter.driver', 'agent.bus.modbus', "
            "'agent.app') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["['agent.app',", "'agent.bus.modbus',", "'drivers.modbus_meter.driver',",
                                  "'drivers.replay.driver']"], out.stderr


SETTLE = """
import gc, os
from agent.runtime.beside import wait_validator

gc.disable()
pid = os.fork()
if pid == 0:
    os._exit(3)
code = wait_validator(pid)
print(code, gc.isenabled(), gc.get_freeze_count() > 0)
"""


def test_the_collector_is_on_again_once_the_child_is_waited_for() -> None:
    # off while the run time was imported; what start-up made is frozen, the collector on again
    out = subprocess.run([sys.executable, "-c", SETTLE], capture_output=True, text=True, cwd=ROOT, check=True,
                         timeout=60)
    assert out.stdout.split() == ["3", "True", "True"], out.stderr
