"""The run-time form of a config (agent.contract.plain): validated with pydantic, run on plain objects.

``to_plain`` turns the validated models into frozen twins with the same attributes, class variables
and behaviour; the agent runs on them, and a process handed a pickled plain config for Modbus TCP
meters runs without ever importing pydantic (pydantic and the models hold ≈ 12 MiB of such a
process at 100 meters: docs/processing.md)."""

from __future__ import annotations

import dataclasses
import json
import pickle
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agent.config import load_config_text
from agent.contract.bases import DeviceBase
from agent.contract.plain import Plain, Secret, own_behaviour, to_plain, twin_of
from tests.mqtt_helpers import Broker
from tests.sim_thread import free_port, simulator

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["voltage_l1", "current_l1", "power_total", "energy_import"]


def meters_config(state: Path, mqtt_port: int, modbus_port: int, units: int = 2, extra: str = "") -> str:
    names = ", ".join(f'"{m}"' for m in METRICS)
    devices = "".join(f'[[devices]]\nname = "meter{u}"\ntype = "modbus_meter"\nprofile = "sdm630"\nunit = {u}\n'
                      f'line = "meters"\npoll_interval = 0.2\nmetrics = [{names}]\n' for u in range(1, units + 1))
    return (f'[gateway]\nid = "gw"\nstate_dir = "{state}"\n[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
            f'password = "s3cret"\n[store]\ncommit_interval = 0.2\n[processing]\njit = "off"\n{extra}'
            f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {modbus_port}\n' + devices)


def test_the_plain_twin_reads_as_the_model_does(tmp_path: Path) -> None:
    cfg = load_config_text(meters_config(tmp_path / "state", 1883, 1502,
                                         extra='[processing.tariff]\nholidays = [2026-10-01]\n'))
    plain = to_plain(cfg)
    assert isinstance(plain, Plain) and not hasattr(type(plain), "model_fields")
    assert plain.model_dump(mode="json") == cfg.model_dump(mode="json")  # every field, secrets starred
    assert plain.mqtt.password == Secret("s3cret") and plain.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(plain) and plain.model_dump(mode="json")["mqtt"]["password"] == "**********"
    # class variables and behaviour (the models' mixins)
    dev, model_dev = plain.devices[0], cfg.devices[0]
    assert type(dev).BUS == "modbus" and type(plain.lines["meters"]).BUS == "modbus"
    assert isinstance(dev, DeviceBase) and dev.lines_used() == ["meters"]
    assert plain.outbox_path == cfg.outbox_path and plain.device("meter2").unit == 2
    assert plain.mqtt.endpoints == cfg.mqtt.endpoints == [("127.0.0.1", 1883)]
    assert dev.limits() == model_dev.limits()
    assert [r.model_dump() for r in dev.resolved_registers()] == [r.model_dump() for r in model_dev.resolved_registers()]
    assert [r.metric() for r in dev.resolved_registers()] == [r.metric() for r in model_dev.resolved_registers()]
    assert dev.profile_info().model_dump() == model_dev.profile_info().model_dump()
    # one plain profile for every meter that uses it; frozen; pickled and back, equal
    assert plain.devices[0].loaded_profile() is plain.devices[1].loaded_profile()
    with pytest.raises(AttributeError, match="frozen"):
        dev.unit = 3  # type: ignore[misc]
    back = pickle.loads(pickle.dumps(plain))
    assert back == plain and back.devices[0].loaded_profile() is back.devices[1].loaded_profile()
    assert to_plain(plain) is plain  # already plain: as it is


def test_a_model_with_behaviour_of_its_own_is_kept_as_it_is() -> None:
    # a driver not moved yet: its config works at run time as the model (pydantic loads for it)
    from pydantic import Field

    from agent.contract import DeviceConfig

    class Own(DeviceConfig):
        gain: float = Field(2.0)

        def scaled(self, x: float) -> float:
            return self.gain * x

    dev = Own(name="d", type="own")
    assert own_behaviour(Own) == ("test_a_model_with_behaviour_of_its_own_is_kept_as_it_is.<locals>.Own.scaled",)
    assert to_plain((dev,))[0] is dev
    assert own_behaviour(DeviceConfig) == ()


def test_only_this_projects_models_are_twinned_and_only_those_a_twin_can_stand_in_for() -> None:
    from pydantic import BaseModel, computed_field

    from agent.contract.plain import twinned

    class Watts(BaseModel):
        volts: float = 230.0
        amps: float = 10.0

        @computed_field
        @property
        def watts(self) -> float:
            return self.volts * self.amps

    class Simple(BaseModel):
        x: int = 1

    assert not twinned(Simple)  # a third-party driver's model: handed over as it is (pydantic loads)
    assert to_plain(Simple()) == Simple()
    for cls in (Watts, Simple):
        cls.__module__ = "drivers.elsewhere"
    assert twinned(Simple) and isinstance(to_plain(Simple()), Plain)
    assert own_behaviour(Watts) == (f"{Watts.__qualname__}.watts",)  # a twin would drop it from dumps
    assert to_plain(Watts()).model_dump() == {"volts": 230.0, "amps": 10.0, "watts": 2300.0}


def test_models_one_factory_makes_keep_their_own_class_variables() -> None:
    from typing import ClassVar

    from pydantic import BaseModel

    def make(scale: int) -> type:
        class Cfg(BaseModel):
            SCALE: ClassVar[int] = scale
            x: int = 1

        Cfg.__module__ = "drivers.elsewhere"  # a model of this project's (they are twinned)
        return Cfg

    a, b = make(1000), make(3000)
    assert (twin_of(a).SCALE, twin_of(b).SCALE) == (1000, 3000)
    assert pickle.loads(pickle.dumps(to_plain(b()))).SCALE == 3000


def test_an_entry_points_spacing_and_extras_are_not_part_of_its_reference() -> None:
    from importlib.metadata import EntryPoint

    from agent.driver import DriverCatalog

    ep = EntryPoint(name="thermo", value="json : dumps [serial]", group="edge_agent.drivers")
    assert DriverCatalog({}, entries={"thermo": ep}).references(["thermo"]) == {"thermo": "json:dumps"}
    assert DriverCatalog.from_references({"thermo": "json:dumps"}).references(["thermo"]) == {"thermo": "json:dumps"}


def test_sections_behaviour_reads_the_same_on_the_twin(tmp_path: Path) -> None:
    cfg = load_config_text(meters_config(tmp_path / "state", 1883, 1502, extra=(
        '[metrics]\nenabled = true\nlisten = "127.0.0.1:9200"\n[web]\nenabled = true\n')))
    plain = to_plain(cfg)
    assert isinstance(plain.metrics, Plain) and isinstance(plain.web, Plain)
    assert plain.metrics.address == cfg.metrics.address == ("127.0.0.1", 9200)
    assert plain.web.address == cfg.web.address
    assert plain.web.password_path(tmp_path) == cfg.web.password_path(tmp_path)


def test_every_models_twin_has_its_fields_and_no_mixin_hides_one(tmp_path: Path) -> None:
    from agent.bus.kinds import discover_line_kinds
    from agent.config.schema import agent_config_model
    from agent.driver import DriverCatalog

    seen: set[type] = set()

    def walk(model: type) -> None:
        if model in seen or not hasattr(model, "__pydantic_fields__"):
            return
        seen.add(model)
        twin = twin_of(model)
        assert twin.__plain_fields__ == tuple(model.model_fields), model
        for klass in type.mro(twin)[1:]:
            hidden = set(vars(klass)) & set(model.model_fields)
            assert not hidden, f"{klass.__qualname__} hides field(s) {hidden} of {model.__qualname__}"
        for name in getattr(model, "__class_vars__", ()):
            assert getattr(twin, name) == getattr(model, name), (model, name)
        for f in model.model_fields.values():
            for arg in _types_in(f.annotation):
                walk(arg)

    walk(agent_config_model())
    # what a config of Modbus TCP meters holds becomes plain (the optional [site] and [homeassistant] may not)
    kept = {m.__qualname__ for m in seen if own_behaviour(m)}
    assert kept <= {"SiteConfig", "TouConfig"}, kept
    for spec in DriverCatalog.discover():
        walk(spec.config_model)
    for kind in discover_line_kinds().values():
        walk(kind.config_model)
    assert len(seen) > 40
    from drivers.modbus_meter.config import ModbusMeterConfig

    for model in (ModbusMeterConfig, *(k.config_model for k in discover_line_kinds().values())):
        assert own_behaviour(model) == (), model


def _types_in(annotation: object) -> list[type]:
    import typing

    if isinstance(annotation, type):
        return [annotation]
    return [t for a in typing.get_args(annotation) for t in _types_in(a)]


def test_the_default_energy_source_has_the_energy_tables_defaults() -> None:
    from agent.contract.options import EnergyConfig
    from agent.processing.options import DefaultEnergy

    assert [f.name for f in dataclasses.fields(DefaultEnergy)] == list(EnergyConfig.model_fields)
    assert dataclasses.asdict(DefaultEnergy(metric="e")) == EnergyConfig(metric="e").model_dump()


def test_the_health_parts_make_the_document_the_models_describe() -> None:
    from agent import health_model as models
    from agent import health_parts as parts

    for part in parts.PARTS:
        assert [f.name for f in dataclasses.fields(part)] == list(getattr(models, part.__name__).model_fields)
    report = parts.HealthReport(gateway="gw", ts=5, uplink=parts.UplinkStats(
        connected=True, refused_topics={"t": parts.RefusedTopic(nacks=2, reason="no")}),
        devices={"m": parts.DeviceReport(up=True, diagnostics={"crc": 1}), "n": parts.DeviceReport()},
        buffer=parts.BufferHealth(drops=parts.Drops(raw=3)), processing={"x": 1})
    wire = report.to_wire()
    assert models.HealthReport.model_validate(wire).to_wire() == wire
    assert "clock" not in wire and "config" not in wire and "diagnostics" not in wire["devices"]["n"]
    assert report.model_dump() == models.HealthReport.model_validate(wire).model_dump()


# A process that runs the agent on a pickled plain config: it never imports pydantic (a finder
# refuses it, naming who asked), and says so after the run. Handed the drivers' and line kinds'
# references too, it reads no entry points either (no importlib.metadata, email, zipfile: ≈ 1 MiB).
CHILD = """
import json, pickle, sys, traceback
class NoPydantic:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pydantic", "pydantic_core"):
            who = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack() if "/agent/" in f.filename
                   or "/drivers/" in f.filename]
            print("pydantic imported by " + " <- ".join(reversed(who)), file=sys.stderr, flush=True)
            raise ImportError("pydantic is not for the run time")
sys.meta_path.insert(0, NoPydantic())
import asyncio
from agent.app import run_agent
handed = pickle.loads(open(sys.argv[1], "rb").read())
kw = {}
if isinstance(handed, dict):
    from agent.bus.kinds import line_kinds_from_references
    from agent.driver import DriverCatalog
    kw = {"catalog": DriverCatalog.from_references(handed["drivers"]),
          "line_kinds": line_kinds_from_references(handed["lines"])}
    handed = handed["config"]
print("running", flush=True)
asyncio.run(run_agent(handed, **kw))
gone = sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core"))
assert not gone, gone
print("no pydantic", len(sys.modules), flush=True)
print(json.dumps({"entry_points_read": "importlib.metadata" in sys.modules,
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("agent", "drivers"))}), flush=True)
"""


@pytest.mark.parametrize(("references", "pages"), [(False, False), (True, False), (False, True)],
                         ids=["config", "config-and-references", "with-web-metrics-homeassistant"])
def test_the_agent_runs_a_plain_config_without_pydantic(tmp_path: Path, mosquitto: Broker, mqtt_subscriber,
                                                        references: bool, pages: bool) -> None:
    from agent.bus.kinds import line_kind_references
    from agent.driver import DriverCatalog

    port = free_port()
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    with simulator("sdm630", tcp=f"127.0.0.1:{port}", units={1: "sdm630", 2: "sdm630"}, update_interval=0.2):
        extra = (f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{free_port()}"\n'
                 f'[web]\nenabled = true\nlisten = "127.0.0.1:{free_port()}"\n[homeassistant]\n') if pages else ""
        cfg = load_config_text(meters_config(tmp_path / "state", mosquitto.port, port, extra=extra))
        handed: object = to_plain(cfg)  # what the start hands the run-time process
        if references:
            handed = {"config": handed, "drivers": DriverCatalog.discover().references(d.type for d in cfg.devices),
                      "lines": line_kind_references(line.type for line in cfg.lines.values())}
            assert handed["drivers"] == {"modbus_meter": "drivers.modbus_meter:SPEC"}
        path = tmp_path / "handed.pickle"
        path.write_bytes(pickle.dumps(handed))
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        failed = None
        try:
            got = sub.wait_for(1, timeout=120, predicate=lambda m: m.topic.endswith("meter1"))
            sub.wait_for(1, timeout=60, predicate=lambda m: m.topic.endswith("meter2"))
        except TimeoutError as e:
            failed = e
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate(timeout=60)
    assert failed is None and proc.returncode == 0, f"{failed}\n{(out + err).decode()[-3000:]}"
    assert b"no pydantic" in out and b"pydantic imported by" not in err, (out + err).decode()[-3000:]
    body = got[0].json()
    assert body["device"] == "meter1" and body["gateway"] == "gw"
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report["entry_points_read"] is not references
    # the import-linter contract `plain-runtime` names every module such a run loads
    contract = next(c for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
                    if c["id"] == "plain-runtime")
    assert sorted(set(report["modules"]) - set(contract["source_modules"])) == []


async def test_every_demo_device_runs_on_the_plain_config(tmp_path: Path, mosquitto: Broker) -> None:
    # every driver family of the demo (and the site controller): a plain config, pickled and back,
    # runs them as the models do (drivers not moved keep their models: to_plain leaves those as they are)
    import asyncio
    import contextlib

    from agent.app import Agent
    from agent.demo.run import demo_config
    from agent.demo.sims import STARTERS, DemoSims

    sims = DemoSims()
    try:
        for start in STARTERS:
            await start(sims)
        cfg = load_config_text(demo_config(tmp_path / "state", mosquitto.port, "".join(sims.toml) + sims.site_toml))
        plain = pickle.loads(pickle.dumps(to_plain(cfg)))
        assert plain.model_dump(mode="json") == cfg.model_dump(mode="json")
        assert isinstance(plain, Plain) and len(plain.devices) >= 8
        agent = Agent(plain)
        task = asyncio.create_task(agent.run())
        deadline = asyncio.get_running_loop().time() + 120
        try:
            while not all(p.health.polls_ok for p in agent.pollers):
                assert not task.done(), task.exception()
                assert asyncio.get_running_loop().time() < deadline, {p.name: p.health.last_error for p in agent.pollers}
                await asyncio.sleep(0.2)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await sims.stop()
