"""Every built-in driver passes the conformance kit (agent.simkit.conformance) against its own simulator:
metrics stable and unique, reads in range, the simulator's values read back, a dead device a DeviceError."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from agent.contract import DRIVERS_GROUP, Batch, DeviceTimeout, Driver, IecState, MetricKind, MetricSpec
from agent.simkit.conformance import (
    DriverConformance,
    SimDevice,
    build_driver,
    check_dead_device,
    check_metrics,
    check_read,
    check_round_trip,
)
from drivers.bacnet import SPEC as BACNET
from drivers.bacnet.link import free_udp_port
from drivers.bacnet.sim import start as start_ahu
from drivers.bme680 import SPEC as BME680
from drivers.bme680.sim import Bme680Emulator
from drivers.cjt188 import SPEC as CJT188
from drivers.cjt188.sim import start as start_cjt188
from drivers.dlt645 import SPEC as DLT645
from drivers.dlt645.sim import start as start_dlt645
from drivers.mhz19 import SPEC as MHZ19
from drivers.mhz19.sim import Mhz19Sim
from drivers.modbus_charger import SPEC as MODBUS_CHARGER
from drivers.modbus_charger.sim import start as start_charger
from drivers.modbus_meter import SPEC as MODBUS_METER
from drivers.modbus_meter.sim import start as start_meter
from drivers.ocpp_charger import SPEC as OCPP_CHARGER
from drivers.ocpp_charger.sim import start as start_charge_point
from drivers.pms5003 import SPEC as PMS5003
from drivers.pms5003.sim import Pms5003Sim
from drivers.pulse_counter import DIGITAL_INPUT_SPEC
from drivers.pulse_counter import SPEC as PULSE_COUNTER
from drivers.pv_inverter import SPEC as PV_INVERTER
from drivers.pv_inverter.sim import InverterSim
from drivers.pv_inverter.sim import start as start_inverter
from drivers.replay import SPEC as REPLAY
from drivers.sds011 import SPEC as SDS011
from drivers.sds011.sim import Sds011Sim
from drivers.sunspec import SPEC as SUNSPEC
from drivers.sunspec.sim import SunSpecSim
from drivers.sunspec.sim import start as start_sunspec
from firmware_bridge import SPEC as MCU_NODE
from tests.drivers.test_bme680 import datasheet
from tests.sim_thread import free_port


async def until(pred, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def serial(port: str) -> dict:
    return {"type": "serial", "port": port, "reopen_min": 0.05, "reopen_max": 0.2}


def modbus_tcp(port: int) -> dict:
    # a live simulator answers at once, but a loaded machine may take seconds; a dead port refuses at once
    return {"type": "modbus_tcp", "host": "127.0.0.1", "port": port, "timeout": 10.0}


class TestReplay(DriverConformance):
    spec = REPLAY

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        f = tmp_path / "series.csv"
        f.write_text("timestamp,value\n2026-03-02 00:00:00,18.5\n2026-03-02 00:05:00,19.25\n")
        yield SimDevice(device={"type": "replay", "file": str(f), "speed": 0, "loop": False},
                        expected=lambda: {"value": 19.25})

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "replay", "file": str(tmp_path / "absent.csv")})


class TestModbusMeter(DriverConformance):
    spec = MODBUS_METER

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        port = free_port()
        sim = await start_meter(profile="sdm630", tcp=f"127.0.0.1:{port}", update_interval=None)
        try:
            yield SimDevice(device={"type": "modbus_meter", "line": "m", "unit": 1, "profile": "sdm630"},
                            lines={"m": modbus_tcp(port)}, expected=lambda: sim.values)
        finally:
            await sim.stop()

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "modbus_meter", "line": "m", "unit": 1, "profile": "sdm630"},
                         lines={"m": modbus_tcp(free_port())})


class TestPms5003(DriverConformance):
    spec = PMS5003

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        sim = await Pms5003Sim(active=False, interval=0.05).start()
        try:
            yield SimDevice(device={"type": "pms5003", "line": "air", "timeout": 10.0}, lines={"air": serial(sim.path)},
                            expected=lambda: {"pm2_5": 15, "pm10": 20, "gt0_3um": 3000})
        finally:
            await sim.stop()

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "pms5003", "line": "air", "timeout": 0.3},
                         lines={"air": serial(str(tmp_path / "ttyABSENT"))})


class TestSds011(DriverConformance):
    spec = SDS011

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        sim = await Sds011Sim(interval=0.05).start()
        try:
            yield SimDevice(device={"type": "sds011", "line": "air", "timeout": 10.0}, lines={"air": serial(sim.path)},
                            expected=lambda: {"pm2_5": sim.pm2_5, "pm10": sim.pm10})
        finally:
            await sim.stop()

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "sds011", "line": "air", "timeout": 0.3},
                         lines={"air": serial(str(tmp_path / "ttyABSENT"))})


class TestMhz19(DriverConformance):
    spec = MHZ19

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        sim = await Mhz19Sim(co2=812).start()
        try:
            yield SimDevice(device={"type": "mhz19", "line": "co2", "timeout": 10.0, "warmup": 0},
                            lines={"co2": serial(sim.path)}, expected=lambda: {"co2": 812, "temperature": 24})
        finally:
            await sim.stop()

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "mhz19", "line": "co2", "timeout": 0.3},
                         lines={"co2": serial(str(tmp_path / "ttyABSENT"))})


class TestBme680(DriverConformance):
    spec = BME680
    rel = 0.002  # the library's compensation against the datasheet's floating-point variant

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        emu = Bme680Emulator()  # the line's emulator starts from the same defaults (vary = false)
        yield SimDevice(device={"type": "bme680", "line": "i2c"},
                        lines={"i2c": {"type": "i2c_sim", "chip": "bme680", "vary": False}},
                        expected=lambda: datasheet(emu.calibration, emu.raw))

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "bme680", "line": "i2c"}, lines={"i2c": {"type": "i2c", "bus": 97}})


async def pulses(driver: Driver, buses) -> None:
    buses.get("gpio").backend.pulse_train(17, [i * 0.02 for i in range(25)]).join()
    await until(lambda: driver.pulses == 25)


class TestPulseCounter(DriverConformance):
    spec = PULSE_COUNTER

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        yield SimDevice(device={"type": "pulse_counter", "line": "gpio", "pin": 17, "pulses_per_unit": 100},
                        lines={"gpio": {"type": "gpio_sim"}}, after_open=pulses,
                        expected=lambda: {"pulses": 25, "rejected_edges": 0, "energy": 0.25})

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "pulse_counter", "line": "gpio", "pin": 17},
                         lines={"gpio": {"type": "gpio", "chip": str(tmp_path / "gpiochip-absent")}})


class TestDigitalInput(DriverConformance):
    spec = DIGITAL_INPUT_SPEC

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        switched: dict[str, float] = {}

        async def switch(driver: Driver, buses) -> None:  # flip the input once
            chip = buses.get("gpio").backend
            switched["state"] = 1 - chip.read(5)
            chip.set_level(5, int(switched["state"]))
            await until(lambda: driver.changes == 1)

        yield SimDevice(device={"type": "digital_input", "line": "gpio", "pin": 5}, lines={"gpio": {"type": "gpio_sim"}},
                        after_open=switch, expected=lambda: {**switched, "changes": 1})

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "digital_input", "line": "gpio", "pin": 5},
                         lines={"gpio": {"type": "gpio", "chip": str(tmp_path / "gpiochip-absent")}})


class TestModbusCharger(DriverConformance):
    spec = MODBUS_CHARGER

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        port = free_port()
        handle = await start_charger(profile="charx", tcp=f"127.0.0.1:{port}")
        try:
            yield SimDevice(device={"type": "modbus_charger", "line": "lan", "profile": "charx"},
                            lines={"lan": modbus_tcp(port)},
                            expected=lambda: {"state": IecState.A, "connected": 0, "power": 0})
        finally:
            await handle.stop()

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "modbus_charger", "line": "lan", "profile": "charx"},
                         lines={"lan": modbus_tcp(free_port())})


class TestOcppCharger(DriverConformance):
    spec = OCPP_CHARGER

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        port = free_port()
        handles = []

        async def connect(driver: Driver, buses) -> None:  # the charge point dials the agent's central system
            handles.append(await start_charge_point(url=f"ws://127.0.0.1:{port}", cp_id="CP1"))
            await until(lambda: driver.session.connected and driver.session.status.get(1) == "Available")

        try:
            yield SimDevice(device={"type": "ocpp_charger", "line": "ocpp", "charge_point_id": "CP1"},
                            lines={"ocpp": {"type": "ocpp", "host": "127.0.0.1", "port": port}},
                            after_open=connect, expected=lambda: {"state": IecState.A, "energy_total": 500.0})
        finally:
            for h in handles:
                await h.stop()

    def dead(self, tmp_path: Path) -> SimDevice:  # no charge point ever connects
        return SimDevice(device={"type": "ocpp_charger", "line": "ocpp", "charge_point_id": "CP1"},
                         lines={"ocpp": {"type": "ocpp", "host": "127.0.0.1", "port": free_port()}})


class TestMcuNode(DriverConformance):
    spec = MCU_NODE

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        # out of process, as on a real line: the driver reads the node's description while it is built
        link = tmp_path / "node"
        sim = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "simulate", "mcu-node", "--link", str(link),
                                "--interval-ms", "50"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await until(link.exists)
            yield SimDevice(device={"type": "mcu_node", "line": "node", "timeout": 10.0, "describe_timeout": 30},
                            lines={"node": {**serial(str(link)), "baudrate": 115200}},
                            expected=lambda: {"output0": 0.0})  # the simulated node's output starts off
        finally:
            sim.terminate()
            sim.wait(10)

    def test_metrics_are_stable_and_unique(self, tmp_path: Path) -> None:
        """A node describes its own metrics: they are known once it has answered, not from config alone."""
        async def run() -> None:
            async with self.live(tmp_path) as sim:
                driver, pool = build_driver(self.spec, sim, tmp_path)  # the node answers from its own process
                try:
                    check_metrics(driver)
                finally:
                    await pool.close()

        asyncio.run(run())

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "mcu_node", "line": "node", "timeout": 0.5, "describe_timeout": 0.2},
                         lines={"node": serial(str(tmp_path / "ttyABSENT"))})


class TestDlt645(DriverConformance):
    spec = DLT645

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        sim = await start_dlt645()
        try:
            yield SimDevice(device={"type": "dlt645", "line": "rs485", "address": "123456781012", "profile": "three_phase",
                                    "request_timeout": 10},
                            lines={"rs485": {**serial(sim.path), "baudrate": 2400}},  # a pty refuses parity E
                            expected=lambda: {k: sim.meters[0].values[k] for k in ("voltage_l1", "current_l3", "power")})
        finally:
            await sim.stop()

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "dlt645", "line": "rs485", "address": "123456781012", "timeout": 2,
                                 "request_timeout": 0.3}, lines={"rs485": serial(str(tmp_path / "ttyABSENT"))})


class TestCjt188(DriverConformance):
    spec = CJT188

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        sim = await start_cjt188(profile="heat")
        try:
            yield SimDevice(device={"type": "cjt188", "line": "mbus", "address": "12345678000001", "profile": "heat",
                                    "request_timeout": 10, "timeout": 20},
                            lines={"mbus": {**serial(sim.path), "baudrate": 2400}},  # a pty refuses parity E
                            expected=lambda: {k: sim.meters[0].values[k] for k in ("heat", "volume", "supply_temperature")})
        finally:
            await sim.stop()

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "cjt188", "line": "mbus", "address": "12345678000001", "profile": "water",
                                 "timeout": 2, "request_timeout": 0.3}, lines={"mbus": serial(str(tmp_path / "ttyABSENT"))})


class TestBacnet(DriverConformance):
    spec = BACNET
    rel = 1e-6  # BACnet REAL is float32
    abs_ = 1e-6

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        sim = await start_ahu()
        points = {"sat": "analog-input,4", "oat": "analog-input,1", "damper": "analog-output,1", "fan_status": "binary-input,1"}
        try:
            yield SimDevice(device={"type": "bacnet", "address": sim.address, "device_instance": sim.instance,
                                    "local_address": f"127.0.0.1:{free_udp_port()}", "request_timeout": 10,
                                    "objects": {k: {"object": v} for k, v in points.items()}},
                            lines={}, expected=lambda: {k: sim.model.values[k] for k in points})
        finally:
            await sim.stop()

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "bacnet", "address": f"127.0.0.1:{free_udp_port()}", "device_instance": 1,
                                 "local_address": f"127.0.0.1:{free_udp_port()}", "request_timeout": 0.5,
                                 "objects": {"sat": {"object": "analog-input,4"}}}, lines={})


class TestSunSpec(DriverConformance):
    spec = SUNSPEC
    DEVICE = {"type": "sunspec", "line": "m", "unit": 1, "models": [103, 123, 124, 802, 203]}

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        port = free_port()
        sim = await start_sunspec(tcp=f"127.0.0.1:{port}", sim=SunSpecSim(clock=lambda: 0.0))  # time stands still
        try:
            yield SimDevice(device=self.DEVICE, lines={"m": modbus_tcp(port)},
                            expected=lambda: {"battery_soc": 50.0, "storage_soc": 50.0, "pv_frequency": 50.0,
                                              "power_limit": 100.0, "voltage_l1": 230.0})
        finally:
            await sim.stop()

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device=self.DEVICE, lines={"m": modbus_tcp(free_port())})


class TestPvInverter(DriverConformance):
    spec = PV_INVERTER
    DEVICE = {"type": "pv_inverter", "line": "m", "profile": "sungrow_sh"}

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        port = free_port()
        sim = await start_inverter(tcp=f"127.0.0.1:{port}", sim=InverterSim("sungrow_sh", clock=lambda: 0.0))
        try:
            yield SimDevice(device=self.DEVICE, lines={"m": modbus_tcp(port)},
                            expected=lambda: {"battery_soc": 50.0, "pv_frequency": 50.0, "battery_power": 0.0,
                                              "pv_voltage_l1": 230.0})
        finally:
            await sim.stop()

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device=self.DEVICE, lines={"m": modbus_tcp(free_port())})


def test_every_built_in_driver_is_covered() -> None:
    covered = {c.spec.type for c in DriverConformance.__subclasses__() if c.__module__ == __name__}
    built_in = {ep.name for ep in entry_points(group=DRIVERS_GROUP) if ep.dist is not None and ep.dist.name == "edge-agent"}
    assert built_in <= covered, f"built-in drivers without a conformance test: {sorted(built_in - covered)}"


# -- the kit catches what it promises to catch ------------------------------------------------------

class Faulty:
    """A driver breaking each rule on demand."""

    def __init__(self, *, shuffle: bool = False, series: int = 0, error: Exception | None = None):
        self.shuffle, self.series, self.error, self.calls = shuffle, series, error, 0

    def metrics(self) -> list[MetricSpec]:
        self.calls += 1
        ms = [MetricSpec("a", "", MetricKind.GAUGE), MetricSpec("b", "", MetricKind.GAUGE)]
        return ms[::-1] if self.shuffle and self.calls % 2 == 0 else ms

    async def open(self) -> None:
        pass

    async def read(self) -> Batch:
        if self.error is not None:
            raise self.error
        return Batch.from_columns([self.series], [0], [1.0], [0])

    async def close(self) -> None:
        pass


def test_the_kit_rejects_unstable_metrics_out_of_range_series_and_untyped_errors() -> None:
    with pytest.raises(AssertionError, match="changed between two calls"):
        check_metrics(Faulty(shuffle=True))
    with pytest.raises(AssertionError, match=r"series \[2\] are not local metric indexes"):
        check_read(Faulty(series=2), asyncio.run(Faulty(series=2).read()))
    with pytest.raises(AssertionError, match="raised OSError.*DeviceError subclass"):
        asyncio.run(check_dead_device(Faulty(error=OSError("no such device"))))
    with pytest.raises(AssertionError, match="read without error"):
        asyncio.run(check_dead_device(Faulty()))
    assert isinstance(asyncio.run(check_dead_device(Faulty(error=DeviceTimeout("silent")))), DeviceTimeout)
    with pytest.raises(AssertionError, match=r"'a': \(1.0, 2.0\)"):
        asyncio.run(check_round_trip(Faulty(), lambda: {"a": 2.0}, polls=1))
