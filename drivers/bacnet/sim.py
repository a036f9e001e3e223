"""A simulated air-handling unit on BACnet/IP: ``edge-agent simulate bacnet-ahu``.

A bacpypes3 device (default instance 1001) serving the :mod:`.ahu_model` plant: temperatures as
analog inputs, the controller's commands as commandable analog outputs (a write at priority 1–15
overrides the controller, which writes at 16), set-points as commandable analog values, the fan as
binary output/input. ``advance(seconds)`` moves the plant in simulated time (tests, fast traces); the
command-line simulator advances it in real time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import click

from agent.contract import SimulatorSpec

from .ahu_model import AhuModel, Faults
from .link import free_udp_port, make_app

# point -> (object type, instance, units, COV increment)
OBJECTS: dict[str, tuple[str, int, str, float]] = {
    "oat": ("analog-input", 1, "degreesCelsius", 0.2),
    "rat": ("analog-input", 2, "degreesCelsius", 0.2),
    "mat": ("analog-input", 3, "degreesCelsius", 0.2),
    "sat": ("analog-input", 4, "degreesCelsius", 0.2),
    "duct_static": ("analog-input", 5, "pascals", 5.0),
    "damper": ("analog-output", 1, "percent", 1.0),
    "cooling_valve": ("analog-output", 2, "percent", 1.0),
    "heating_valve": ("analog-output", 3, "percent", 1.0),
    "fan_speed": ("analog-output", 4, "percent", 1.0),
    "sat_sp": ("analog-value", 1, "degreesCelsius", 0.1),
    "duct_static_sp": ("analog-value", 2, "pascals", 1.0),
    "fan_status": ("binary-input", 1, "", 0.0),
}
DESCRIPTIONS = {"oat": "Outdoor air temperature", "rat": "Return air temperature", "mat": "Mixed air temperature",
                "sat": "Supply air temperature", "duct_static": "Duct static pressure",
                "damper": "Outdoor air damper command", "cooling_valve": "Cooling valve command",
                "heating_valve": "Heating valve command", "fan_speed": "Supply fan speed command",
                "sat_sp": "Supply air temperature set-point", "duct_static_sp": "Duct static set-point",
                "fan_status": "Supply fan status"}


def _with_override(base: type) -> type:
    """``base`` whose status flags show a local override (bacpypes3's objects never set that flag)."""
    from bacpypes3.basetypes import StatusFlags

    class Flagged(base):  # type: ignore[misc, valid-type]
        @property
        def statusFlags(self) -> Any:
            flags = list(base.statusFlags.fget(self))  # type: ignore[attr-defined]
            flags[2] = int(bool(self.__dict__.get("_overridden")))
            return StatusFlags(flags)

        @statusFlags.setter
        def statusFlags(self, value: Any) -> None:
            """Derived from event state, reliability, the override and out-of-service."""

    Flagged.__name__ = base.__name__
    return Flagged


@dataclass
class AhuSim:
    model: AhuModel
    instance: int = 1001
    host: str = "127.0.0.1"
    port: int = 0
    bbmd: bool = False  # also a BBMD accepting foreign-device registrations

    async def start(self) -> AhuSim:
        from bacpypes3.local.analog import AnalogInputObject, AnalogOutputObject, AnalogValueObjectCmd
        from bacpypes3.local.binary import BinaryInputObject

        if self.port == 0:
            self.port = free_udp_port(self.host)
        here = f"{self.host}:{self.port}"
        self.app = make_app("AHU-1", self.instance, here, bbmd=[here] if self.bbmd else None)
        self.objects: dict[str, Any] = {}
        kinds = {"analog-input": AnalogInputObject, "analog-output": AnalogOutputObject,
                 "analog-value": AnalogValueObjectCmd, "binary-input": BinaryInputObject}
        kinds = {k: _with_override(v) for k, v in kinds.items()}
        for point, (otype, inst, units, cov) in OBJECTS.items():
            v = self.model.values[point]
            kw: dict[str, Any] = {"objectIdentifier": f"{otype},{inst}", "objectName": point,
                                  "description": DESCRIPTIONS[point],
                                  "outOfService": False, "reliability": "noFaultDetected", "eventState": "normal"}
            if otype.startswith("binary"):
                kw.update(presentValue="active" if v else "inactive", polarity="normal")
            else:
                kw.update(presentValue=float(v), units=units, covIncrement=cov)
            if otype in ("analog-output", "analog-value"):
                kw["relinquishDefault"] = float(v)
            obj = kinds[otype](**kw)
            self.app.add_object(obj)
            self.objects[point] = obj
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _written(self, point: str) -> float | None:
        """The value written above the controller's priority 16, if any."""
        obj = self.objects[point]
        for pv in list(obj.priorityArray)[:15]:
            if pv is not None and getattr(pv, "null", None) is None:
                return float(pv.real)
        return None

    def advance(self, seconds: float) -> dict[str, float]:
        """Move the plant ``seconds`` on and publish its values (COV notifications follow)."""
        m = self.model
        for point in ("damper", "cooling_valve", "heating_valve", "fan_speed"):
            w = self._written(point)
            if w is None:
                m.overrides.pop(point, None)
            else:
                m.overrides[point] = w
        for point in ("sat_sp", "duct_static_sp"):
            setattr(m, "sat_sp" if point == "sat_sp" else "static_sp", float(self.objects[point].presentValue))
        values = m.step(seconds)
        for point, obj in self.objects.items():
            if point in ("sat_sp", "duct_static_sp"):
                continue
            v = values[point]
            obj.presentValue = ("active" if v else "inactive") if point == "fan_status" else float(v)
        return values

    def foreign_devices(self) -> list[str]:
        """Addresses registered with this device as a BBMD (its foreign-device table)."""
        return [str(e.fdAddress) for ll in self.app.link_layers.values() for e in getattr(ll, "bbmdFDT", [])]

    def set_flags(self, point: str, *, fault: bool = False, overridden: bool = False,
                  out_of_service: bool = False) -> None:
        """Set an object's status flags (in-alarm, fault, overridden, out-of-service)."""
        obj = self.objects[point]
        obj.__dict__["_overridden"] = overridden
        obj.outOfService = out_of_service
        obj.reliability = "unreliableOther" if fault else "noFaultDetected"

    def run_at(self, speed: float, period: float = 1.0) -> None:
        """Advance the plant ``speed`` simulated seconds per real second, every ``period`` seconds."""
        async def tick() -> None:
            while True:
                await asyncio.sleep(period)
                self.advance(speed * period)
        self._ticker = asyncio.get_running_loop().create_task(tick())

    async def stop(self) -> None:
        ticker = getattr(self, "_ticker", None)
        if ticker is not None:
            ticker.cancel()
        self.app.close()


async def start(*, host: str = "127.0.0.1", port: int = 0, instance: int = 1001, faults: tuple[str, ...] = (),
                seed: int = 1, start_hour: float = 0.0, bbmd: bool = False, speed: float = 0.0,
                period: float = 1.0) -> AhuSim:
    """Start the simulated AHU on ``host:port`` (0: a free port); ``.address`` is where it listens.
    ``speed`` > 0 runs the plant at that many simulated seconds per second (0: only ``advance``)."""
    model = AhuModel(faults=Faults.parse(faults), seed=seed)
    model.t = start_hour * 3600.0
    model.step(0.0)
    sim = await AhuSim(model=model, instance=instance, host=host, port=port, bbmd=bbmd).start()
    if speed > 0:
        sim.run_at(speed, period)
    return sim


@click.command(name="bacnet-ahu")
@click.option("--address", default="127.0.0.1:47808", show_default=True, help="HOST:PORT to serve BACnet/IP on.")
@click.option("--instance", type=click.IntRange(0, 4194302), default=1001, show_default=True, help="Device instance.")
@click.option("--fault", "faults", multiple=True,
              help="stuck_damper[=POS], leaking_valve[=FRACTION], sensor_bias[=POINT:K] (repeatable).")
@click.option("--speed", type=click.FloatRange(1, 3600), default=60.0, show_default=True,
              help="Simulated seconds per real second.")
@click.option("--bbmd", is_flag=True, help="Also act as a BBMD accepting foreign-device registrations.")
@click.option("--start-hour", type=click.FloatRange(0, 24), default=8.0, show_default=True, help="Simulated time of day.")
def command(address: str, instance: int, faults: tuple[str, ...], speed: float, bbmd: bool, start_hour: float) -> None:
    """Serve a simulated air-handling unit (physics, seeded faults) on BACnet/IP."""
    host, _, port = address.rpartition(":")
    try:
        Faults.parse(faults)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--fault") from None

    async def run() -> None:
        sim = await start(host=host, port=int(port), instance=instance, faults=faults, start_hour=start_hour,
                          bbmd=bbmd, speed=speed)
        click.echo(f"AHU device {instance} at {sim.address}; configure: type = \"bacnet\", "
                   f"address = \"{sim.address}\", device_instance = {instance}")
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


SIMULATOR = SimulatorSpec(name="bacnet-ahu", summary="An air-handling unit on BACnet/IP (physics, stuck damper, "
                          "leaking valve, sensor bias).", command=command, start=start)
