"""Every driver the project ships runs on a plain config (agent.contract.plain) without pydantic: the
demo's devices deliver readings from a process handed a pickled plain config, no driver's or line
kind's run time imports pydantic, and no behaviour of their models is missing from the twins."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.config import load_config_text
from agent.contract.plain import to_plain, twin_of
from tests.mqtt_helpers import Broker
from tests.test_plain_config import CHILD, ROOT, _types_in


@pytest.fixture
def demo_sims():
    """The demo's simulated devices (agent.demo.sims, as `edge-agent demo` starts them) on a loop of
    their own: yields (the devices' config text, the site controller's, devices left out)."""
    import asyncio
    import threading

    from agent.demo.sims import STARTERS, DemoSims

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="demo-sims", daemon=True)
    thread.start()
    sims = DemoSims()
    try:
        for starter in STARTERS:
            asyncio.run_coroutine_threadsafe(starter(sims), loop).result(120)
        yield "".join(sims.toml), sims.site_toml, sims.unavailable
    finally:
        asyncio.run_coroutine_threadsafe(sims.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_the_demo_devices_run_on_a_plain_config_without_pydantic(tmp_path: Path, mosquitto: Broker, mqtt_subscriber,
                                                                 demo_sims) -> None:
    """Every demo driver (meters on RTU and TCP, chargers under the site controller, PMS5003 on a pty,
    pulses on a simulated GPIO line, a BME680 on an emulated I2C bus, replayed series) runs from a
    pickled plain config, and each device's readings reach the broker."""
    from agent.demo.run import demo_config

    devices, site, unavailable = demo_sims
    assert not unavailable, unavailable  # the test environment has every demo library
    text = demo_config(tmp_path / "state", mosquitto.port, devices + site) + '\n[processing]\njit = "off"\n'
    cfg = load_config_text(text)
    assert cfg.site is not None and len(cfg.site.chargers) == 4
    names = {d.name for d in cfg.devices}
    assert {d.type for d in cfg.devices} >= {"modbus_meter", "modbus_charger", "pms5003", "pulse_counter", "bme680",
                                             "replay"}
    sub = mqtt_subscriber(mosquitto, f"edge/{cfg.gateway.id}/telemetry/#")
    handed = tmp_path / "config.pickle"
    handed.write_bytes(pickle.dumps(to_plain(cfg)))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(handed)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)

    def heard() -> set[str]:
        return {m.json().get("device") for m in sub.snapshot()}

    try:  # until every device was heard from, or the process ended
        deadline = time.monotonic() + 180
        while not names <= heard() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert names <= heard()
    except AssertionError:
        proc.kill()
        out, err = proc.communicate(timeout=60)
        raise AssertionError(f"no readings from {sorted(names - heard())}\n" + (out + err).decode()[-3000:]) from None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"no pydantic" in out, (out + err).decode()[-3000:]
    assert b"Traceback" not in err and b"ERROR" not in err, err.decode()[-3000:]  # the site controller too


# Every driver's and line kind's run time this project ships (its package, factory and what they import),
# loaded in a process that refuses pydantic: what the running agent may load for any config. (A
# third-party driver, such as tests/example_driver, may keep its model beside its driver.)
RUN_TIME = """
import sys, traceback
from importlib.metadata import entry_points
refused = []
class NoPydantic:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pydantic", "pydantic_core"):
            who = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename]
            refused.append(" <- ".join(reversed(who[-6:])))
            raise ImportError("pydantic is not for the run time")
sys.meta_path.insert(0, NoPydantic())
for group in ("edge_agent.drivers", "edge_agent.lines"):
    for ep in entry_points(group=group):
        if not ep.value.startswith(("agent.", "drivers.", "firmware_bridge")):
            continue
        try:
            ep.load().factory
        except ImportError as e:
            print(f"{group} {ep.name}: {e}")
print("\\n".join(refused))
"""


def test_no_driver_or_line_kind_imports_pydantic_at_run_time() -> None:
    proc = subprocess.run([sys.executable, "-c", RUN_TIME], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not proc.stdout.strip(), proc.stdout[-3000:]


def test_no_driver_models_behaviour_is_missing_from_its_twin() -> None:
    """What a driver's or line kind's model does besides validating (methods, properties) is in its
    mixins, so the run time finds it on the plain twin too (``plain_extras`` feeds the twin itself)."""
    from pydantic import BaseModel

    from agent.bus.kinds import discover_line_kinds
    from agent.driver import DriverCatalog

    seen: set[type] = set()
    missing: dict[str, list[str]] = {}

    def walk(model: type) -> None:
        if model in seen or not hasattr(model, "__pydantic_fields__"):
            return
        seen.add(model)
        twin = dir(twin_of(model))
        lost = [n for n in dir(model) if not n.startswith("_") and n not in twin and n not in model.model_fields
                and not hasattr(BaseModel, n) and n != "plain_extras"]
        if lost:
            missing[f"{model.__module__}.{model.__qualname__}"] = lost
        for f in model.model_fields.values():
            for arg in _types_in(f.annotation):
                walk(arg)

    ours = ("agent.", "drivers.", "firmware_bridge")
    for spec in DriverCatalog.discover():
        if spec.config_model.__module__.startswith(ours):
            walk(spec.config_model)
    for kind in discover_line_kinds().values():
        if kind.config_model.__module__.startswith(ours):
            walk(kind.config_model)
    assert not missing, missing
