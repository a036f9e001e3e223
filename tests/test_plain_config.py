"""The run-time form of a config (agent.contract.plain): validated with pydantic, run on plain objects.

``to_plain`` turns the validated models into frozen twins with the same attributes, class variables
and behaviour; the agent runs on them, and a process handed a pickled plain config for Modbus TCP
meters runs without ever importing pydantic (the models and their validators cost the gateway
8-10 MB)."""

from __future__ import annotations

import dataclasses
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config_text
from agent.contract.bases import DeviceBase
from agent.contract.plain import Plain, Secret, to_plain, twin_of
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
    cfg = load_config_text(meters_config(tmp_path / "state", 1883, 1502))
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
    for spec in DriverCatalog.discover():
        walk(spec.config_model)
    for kind in discover_line_kinds().values():
        walk(kind.config_model)
    assert len(seen) > 40


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
# refuses it, naming who asked), and says so after the run.
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
config = pickle.loads(open(sys.argv[1], "rb").read())
print("running", flush=True)
asyncio.run(run_agent(config))
gone = sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core"))
assert not gone, gone
print("no pydantic", len(sys.modules), flush=True)
"""


def test_the_agent_runs_a_plain_config_without_pydantic(tmp_path: Path, mosquitto: Broker, mqtt_subscriber) -> None:
    port = free_port()
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    with simulator("sdm630", tcp=f"127.0.0.1:{port}", units={1: "sdm630", 2: "sdm630"}, update_interval=0.2):
        cfg = load_config_text(meters_config(tmp_path / "state", mosquitto.port, port))
        handed = tmp_path / "config.pickle"  # what the start hands the run-time process
        handed.write_bytes(pickle.dumps(to_plain(cfg)))
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(handed)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            got = sub.wait_for(1, timeout=120, predicate=lambda m: m.topic.endswith("meter1"))
            sub.wait_for(1, timeout=60, predicate=lambda m: m.topic.endswith("meter2"))
        except TimeoutError:
            proc.kill()
            out, err = proc.communicate(timeout=60)
            raise AssertionError((out + err).decode()[-3000:]) from None
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"no pydantic" in out, (out + err).decode()[-3000:]
    body = got[0].json()
    assert body["device"] == "meter1" and body["gateway"] == "gw"
