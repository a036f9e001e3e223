"""Conformance kit: the checks every driver passes, for built-in and third-party drivers alike.

Plain functions (:func:`check_metrics`, :func:`check_read`, :func:`check_round_trip`,
:func:`check_dead_device`) and a pytest base class, :class:`DriverConformance`: subclass it as
``TestMyDriver``, set ``spec``, and describe a device on its simulator (``live``) and a device
nobody answers (``dead``) as the ``[[devices]]`` and ``[lines]`` tables a user would write::

    class TestMyDriver(DriverConformance):
        spec = SPEC

        @asynccontextmanager
        async def live(self, tmp_path):
            sim = await MySim(value=21.5).start()
            try:
                yield SimDevice(device={"type": "my_device", "line": "l"},
                                lines={"l": {"type": "serial", "port": sim.path}},
                                expected=lambda: {"temperature": 21.5})
            finally:
                await sim.stop()

        def dead(self, tmp_path):
            return SimDevice(device={"type": "my_device", "line": "l", "timeout": 0.3},
                             lines={"l": {"type": "serial", "port": str(tmp_path / "absent")}})

The test methods are synchronous (each runs its own event loop), so no pytest plugin is needed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from agent.bus.base import BusPool
from agent.bus.kinds import LINE_KINDS
from agent.contract import (
    Batch,
    Buses,
    DeclaresPoints,
    DeviceError,
    Driver,
    DriverContext,
    DriverSpec,
    MetricSpec,
    Point,
    PointControl,
    PointKind,
    Sample,
    aliases_of,
)


@dataclass
class SimDevice:
    """A device as a user configures it: its ``[[devices]]`` table (``name`` optional), the
    ``[lines]`` it uses, and the values its simulator serves (``expected()``, read after each poll).
    ``after_open(driver, buses)`` runs once the driver is open: connect a simulator that dials the
    agent (an OCPP charge point), or act on a simulated line (pulses on a GPIO pin)."""

    device: Mapping[str, Any]
    lines: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    expected: Callable[[], Mapping[str, float]] = dict
    after_open: Callable[[Driver, Buses], Awaitable[None]] | None = None  # drive the simulated device


def build_driver(spec: DriverSpec, sim: SimDevice, state_dir: Path) -> tuple[Driver, BusPool]:
    """Validate the tables through the driver's and the line kinds' config models, then build the
    driver as the agent does (its lines in a :class:`BusPool`)."""
    lines = {}
    for name, table in sim.lines.items():
        kind = LINE_KINDS.get(str(table.get("type")))
        assert kind is not None, f"line {name!r}: no line kind {table.get('type')!r} is installed"
        lines[name] = kind.config_model.model_validate(dict(table))
    pool = BusPool(lines, LINE_KINDS)
    return spec.factory(device_config(spec, sim), DriverContext("conformance", state_dir, pool)), pool


def device_config(spec: DriverSpec, sim: SimDevice) -> Any:
    """The simulated device's table validated through the driver's config model."""
    return spec.config_model.model_validate({"name": "dut", "type": spec.type, **sim.device})


def check_metrics(driver: Driver) -> list[MetricSpec]:
    """``metrics()`` is non-empty, stable (two calls agree) and names each metric once."""
    first, second = list(driver.metrics()), list(driver.metrics())
    assert first, "metrics() is empty: a driver declares every metric it can deliver"
    assert all(isinstance(m, MetricSpec) for m in first), "metrics() must return MetricSpec items"
    assert first == second, "metrics() changed between two calls: the order and content must be fixed"
    names = [m.name for m in first]
    dupes = sorted({n for n in names if names.count(n) > 1})
    assert not dupes, f"metric names must be unique, repeated: {dupes}"
    return first


def check_listed_metrics(spec: DriverSpec, driver: Driver, config: Any) -> None:
    """A spec that lists a config's metrics (``DriverSpec.metrics``, what validation asks) lists what
    the driver built from that config delivers."""
    if spec.metrics is None:
        return
    assert list(spec.metrics(config)) == list(driver.metrics()), (
        f"{spec.type}: DriverSpec.metrics lists other metrics than the driver built from the same config")


def check_read(driver: Driver, result: Sequence[Sample] | Batch) -> dict[str, float]:
    """A read returns a Batch whose series are local metric indexes in range, or samples of
    declared metrics; returns the values by metric name."""
    names = [m.name for m in driver.metrics()]
    if isinstance(result, Batch):
        series = result.series.tolist()
        bad = sorted({i for i in series if not 0 <= i < len(names)})
        assert not bad, f"Batch series {bad} are not local metric indexes (0..{len(names) - 1})"
        assert len(result.value) == len(series) == len(result.quality) == len(result.ts), "Batch columns differ in length"
        return {names[i]: float(v) for i, v in zip(series, result.value.tolist(), strict=True)}
    assert isinstance(result, Sequence), f"read() returned {type(result).__name__}: a Batch or a list of Sample"
    out: dict[str, float] = {}
    for s in result:
        assert isinstance(s, Sample), f"read() returned {type(s).__name__} in its list: Sample expected"
        assert s.metric in names, f"sample of undeclared metric {s.metric!r} (declared: {names})"
        out[s.metric] = float(s.value)
    return out


def _close(a: float, b: float, rel: float, abs_: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


async def check_round_trip(driver: Driver, expected: Callable[[], Mapping[str, float]], *, polls: int = 3,
                           rel: float = 1e-6, abs_: float = 1e-9) -> dict[str, float]:
    """Poll an open driver (up to ``polls`` times, for devices that warm up) until every value the
    simulator serves is read back; returns the last values read."""
    got: dict[str, float] = {}
    want: Mapping[str, float] = {}
    for _ in range(polls):
        got.update(check_read(driver, await driver.read()))
        want = expected()
        if all(k in got and _close(got[k], v, rel, abs_) for k, v in want.items()):
            return got
    wrong = {k: (got.get(k), v) for k, v in want.items() if k not in got or not _close(got[k], v, rel, abs_)}
    raise AssertionError(f"read back (got, served) differ after {polls} polls: {wrong}")


def check_points(spec: DriverSpec, driver: Driver) -> list[Point]:
    """A driver that accepts writes declares its points on its config (unique names, a kind, sane
    bounds, what a write means), takes them by name (``write``), and its aliases name declared points."""
    cfg = getattr(driver, "config", None)
    if not isinstance(cfg, DeclaresPoints):
        assert not spec.writable, f"{spec.type} says writable but its config declares no points()"
        return []
    points = list(cfg.points())
    names = [p.name for p in points]
    assert len(set(names)) == len(names), f"point names repeat: {names}"
    for p in points:
        assert isinstance(p, Point) and isinstance(p.kind, PointKind), f"{p!r} is not a Point with a PointKind"
        assert p.low is None or p.high is None or p.low <= p.high, f"point {p.name}: low > high"
        assert p.meaning, f"point {p.name}: say what a write means (meaning)"
    assert spec.writable, f"{spec.type} declares points: set writable=True in its DriverSpec"
    assert isinstance(driver, PointControl), f"{spec.type} declares points but its driver has no write(point, value)"
    for action, target in aliases_of(cfg).items():
        assert "{output}" in target or target in names, f"alias {action!r} names undeclared point {target!r}"
    return points


async def check_dead_device(driver: Driver, *, within: float = 30.0) -> DeviceError:
    """Against a device nobody answers, ``open()`` or ``read()`` raises a :class:`DeviceError`
    subclass (DeviceTimeout, BusUnavailable, ProtocolError...), not a bare exception, and in bounded time."""
    try:
        async with asyncio.timeout(within):
            await driver.open()
            result = await driver.read()
    except DeviceError as e:
        return e
    except TimeoutError:
        raise AssertionError(f"a dead device hung open()/read() for {within:g} s instead of raising a DeviceError") from None
    except Exception as e:  # noqa: BLE001 - the point is to report the untyped error
        raise AssertionError(f"a dead device raised {type(e).__name__}: {e}; raise a DeviceError subclass") from e
    raise AssertionError(f"a dead device was read without error: {result!r}")


class DriverConformance:
    """Pytest base class: subclass as ``Test...``, set ``spec``, implement ``live`` and ``dead``."""

    spec: ClassVar[DriverSpec]
    polls: ClassVar[int] = 3  # polls allowed before every served value has been read back
    rel: ClassVar[float] = 1e-6
    abs_: ClassVar[float] = 1e-9

    def live(self, tmp_path: Path) -> AbstractAsyncContextManager[SimDevice]:
        """Start the simulator; yield the device on it (stop the simulator on exit)."""
        raise NotImplementedError

    def dead(self, tmp_path: Path) -> SimDevice:
        """A device configured where nothing answers (short timeouts keep the test quick)."""
        raise NotImplementedError

    async def _with(self, sim: SimDevice, tmp_path: Path, check: Callable[[Driver, BusPool], Awaitable[Any]]) -> Any:
        driver, pool = build_driver(self.spec, sim, tmp_path)
        try:
            return await check(driver, pool)
        finally:
            try:
                await driver.close()
            finally:
                await pool.close()

    def test_metrics_are_stable_and_unique(self, tmp_path: Path) -> None:
        sim = self.dead(tmp_path)
        driver, _ = build_driver(self.spec, sim, tmp_path)
        check_metrics(driver)
        check_listed_metrics(self.spec, driver, device_config(self.spec, sim))

    def test_points_are_declared_consistently(self, tmp_path: Path) -> None:
        driver, _ = build_driver(self.spec, self.dead(tmp_path), tmp_path)
        check_points(self.spec, driver)

    def test_reads_its_simulator(self, tmp_path: Path) -> None:
        async def round_trip(driver: Driver, pool: BusPool, sim: SimDevice) -> None:
            await driver.open()
            if sim.after_open is not None:
                await sim.after_open(driver, pool)
            await check_round_trip(driver, sim.expected, polls=self.polls, rel=self.rel, abs_=self.abs_)

        async def run() -> None:
            async with self.live(tmp_path) as sim:
                await self._with(sim, tmp_path, lambda d, p: round_trip(d, p, sim))
        asyncio.run(run())

    def test_a_dead_device_raises_a_device_error(self, tmp_path: Path) -> None:
        asyncio.run(self._with(self.dead(tmp_path), tmp_path, lambda d, _: check_dead_device(d)))
