"""Pulse counter and digital input on the simulated GPIO chip: counting, debounce, threads, restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from agent.bus.base import BusPool
from agent.bus.gpio import Edge, GpioLineConfig, RpiGpioBackend, make_backend
from agent.bus.kinds import LINE_KINDS
from agent.driver import DriverContext
from agent.errors import BusUnavailable, ConfigError, DeviceError
from agent.simkit.gpio import GpioSimLineConfig, make_gpio_sim_bus
from drivers.pulse_counter import DIGITAL_INPUT_SPEC, SPEC


def make(tmp_path, spec=SPEC, **cfg):
    pool = BusPool({"gpio": GpioSimLineConfig(type="gpio_sim")}, LINE_KINDS)
    config = spec.config_model(name="meter", type=spec.type, line="gpio", pin=17, **cfg)
    return spec.factory(config, DriverContext("gw", tmp_path, pool)), pool


async def wait_for(pred, timeout=60.0):
    deadline = time.monotonic() + timeout  # a bound on time, not on turns of a loaded loop
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def values(samples):
    return {s.metric: s.value for s in samples}


async def test_counts_pulses_into_energy_and_power(tmp_path):
    drv, pool = make(tmp_path, pulses_per_unit=1000)
    await drv.open()
    chip = pool.get("gpio").backend
    chip.pulse_train(17, [i * 0.05 for i in range(250)]).join()
    await wait_for(lambda: drv.pulses == 250)
    v = values(await drv.read())
    assert v == {"pulses": 250, "rejected_edges": 0, "energy": 0.25}
    chip.pulse_train(17, [i * 0.05 for i in range(100)]).join()
    await wait_for(lambda: drv.pulses == 350)
    await asyncio.sleep(0.2)
    v = values(await drv.read())
    assert v["energy"] == pytest.approx(0.35) and v["power"] > 0
    await drv.close()
    await pool.close()


async def test_debounce_rejects_fast_edges_and_reports_them(tmp_path):
    drv, pool = make(tmp_path, quantity="volume", pulses_per_unit=100, min_interval_ms=20)
    await drv.open()
    # a bouncing contact: 3 real pulses, each followed by a bounce 5 ms later
    pool.get("gpio").backend.pulse_train(17, [0, 0.005, 0.1, 0.105, 0.2, 0.205], width=0.0005).join()
    await wait_for(lambda: drv.pulses + drv.rejected == 6)
    v = values(await drv.read())
    assert v["pulses"] == 3 and v["rejected_edges"] == 3 and v["volume"] == pytest.approx(0.03)
    await drv.close()
    await pool.close()


async def test_edges_from_a_foreign_thread_reach_the_loop_thread(tmp_path):
    bus = make_gpio_sim_bus("g", GpioSimLineConfig(type="gpio_sim"))
    await bus.open()
    seen: list[int] = []
    bus.watch(5, Edge.FALLING, lambda pin, level, ts: seen.append(threading.get_ident()))
    t = bus.backend.pulse_train(5, [0, 0.01, 0.02])
    t.join()
    assert t.ident != threading.get_ident()
    await wait_for(lambda: len(seen) == 3)
    assert set(seen) == {threading.get_ident()}
    await bus.close()


CHILD = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    from agent.bus.base import BusPool
    from agent.simkit.gpio import GpioSimLineConfig
    from agent.bus.kinds import LINE_KINDS
    from agent.driver import DriverContext
    from drivers.pulse_counter import SPEC

    async def main(state_dir, n, via):
        pool = BusPool({"gpio": GpioSimLineConfig(type="gpio_sim")}, LINE_KINDS)
        cfg = SPEC.config_model(name="meter", type="pulse_counter", line="gpio", pin=17, persist_interval=0.2)
        drv = SPEC.factory(cfg, DriverContext("gw", Path(state_dir), pool))
        await drv.open()
        start = drv.pulses  # what an earlier run saved
        pool.get("gpio").backend.pulse_train(17, [i * 0.03 for i in range(n)]).join()
        while drv.pulses < start + n:
            await asyncio.sleep(0.01)
        if via == "read":
            print("read", (await drv.read())[0].value, flush=True)
        else:
            saved = Path(state_dir) / "pulse_counter" / "meter.json"
            for _ in range(600):  # the timed flush saves it (no read asks for it)
                await asyncio.sleep(0.05)
                if json.loads(saved.read_text())["pulses"] == drv.pulses:
                    break
            print("counted", drv.pulses, flush=True)
        await asyncio.sleep(60)

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
""")


def run_and_kill(state_dir, n: int, via: str) -> str:
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(state_dir), str(n), via], stdout=subprocess.PIPE,
                         text=True, cwd=os.getcwd())
    try:
        line = p.stdout.readline()
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    return line.strip()


async def test_total_survives_kill_9_without_loss_or_double_count(tmp_path):
    assert await asyncio.to_thread(run_and_kill, tmp_path, 120, "read") == "read 120.0"
    assert await asyncio.to_thread(run_and_kill, tmp_path, 80, "flush") == "counted 200"
    drv, pool = make(tmp_path, persist_interval=0.2)
    await drv.open()
    assert values(await drv.read())["pulses"] == 200  # nothing lost, nothing counted twice
    pool.get("gpio").backend.pulse_train(17, [i * 0.03 for i in range(50)]).join()
    await wait_for(lambda: drv.pulses == 250)
    assert values(await drv.read())["pulses"] == 250
    await drv.close()
    await pool.close()
    drv, pool = make(tmp_path)
    await drv.open()
    assert values(await drv.read())["energy"] == 0.25
    await drv.close()
    await pool.close()


async def test_damaged_state_is_an_error_not_a_silent_reset(tmp_path):
    (tmp_path / "pulse_counter").mkdir()
    (tmp_path / "pulse_counter" / "meter.json").write_text('{"pulses": -3}')
    drv, pool = make(tmp_path)
    with pytest.raises(DeviceError, match="meter.json is damaged"):
        await drv.open()
    await pool.close()


async def test_digital_input_state_and_changes(tmp_path):
    drv, pool = make(tmp_path, spec=DIGITAL_INPUT_SPEC, invert=True)
    await drv.open()
    chip = pool.get("gpio").backend
    assert values(await drv.read()) == {"state": 0, "changes": 0, "rejected_edges": 0}  # pulled up = open contact
    await asyncio.to_thread(chip.set_level, 17, 0)
    await wait_for(lambda: drv.changes == 1)
    assert values(await drv.read())["state"] == 1
    await drv.close()
    await pool.close()


async def test_no_gpio_hardware_is_a_clear_bus_error():
    with pytest.raises(BusUnavailable, match=r"no usable GPIO backend: .*gpiod.*edge-agent\[pi\].*RPi.GPIO"):
        make_backend(GpioLineConfig(type="gpio", chip="/dev/gpiochip99"))


def test_rpi_gpio_runtime_error_off_pi_is_caught(tmp_path, monkeypatch):
    pkg = tmp_path / "RPi"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "GPIO.py").write_text('raise RuntimeError("This module can only be run on a Raspberry Pi!")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "RPi", raising=False)
    monkeypatch.delitem(sys.modules, "RPi.GPIO", raising=False)
    with pytest.raises(BusUnavailable, match="only be run on a Raspberry Pi"):
        RpiGpioBackend()


def test_config_rejects_bad_pulse_settings():
    from agent.config.loader import load_config_text

    text = """
[gateway]
id = "gw"
[lines.gpio]
type = "gpio"
[[devices]]
name = "m"
type = "pulse_counter"
line = "gpio"
pin = 17
pulses_per_unit = 0
"""
    with pytest.raises(ConfigError, match="pulses_per_unit"):
        load_config_text(text)
