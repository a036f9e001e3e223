"""The local metrics endpoint, scraped from a real running agent (a subprocess with a real mosquitto),
checked with a strict reading of the Prometheus text format and with prometheus_client's parser."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from agent.cli.main import cli
from agent.config import load_config_text
from agent.metrics.exposition import Family, render
from tests.chaos.agent_proc import AgentProcess, agent_config, wait_until, write_replay_csv

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{({_LABEL}(?:,{_LABEL})*)?\}})? (-?[0-9.e+-]+|NaN|[+-]Inf)$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def strict_parse(text: str) -> dict[str, tuple[str, list[tuple[dict[str, str], float]]]]:
    """{family: (type, [(labels, value)])}; fails on anything the 0.0.4 text format does not allow:
    a sample without its HELP and TYPE before it, a family declared twice or split, a bad line."""
    assert text.endswith("\n"), "exposition must end with a line feed"
    fams: dict[str, tuple[str, list]] = {}
    current = None
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helped, f"HELP twice for {name}"
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, type_ = line.split(" ")
            assert name in helped and name not in fams, line
            assert type_ in ("counter", "gauge", "untyped"), line
            if type_ == "counter":
                assert name.endswith("_total"), line
            fams[name] = (type_, [])
            current = name
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        assert m.group(1) == current, f"sample {m.group(1)} outside its family ({current})"
        labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                  for k, v in _LABEL_RE.findall(m.group(2) or "")}
        fams[current][1].append((labels, float(m.group(3))))
    return fams


def value(fams, name: str, **labels: str) -> float:
    hits = [v for lab, v in fams[name][1] if lab == labels]
    assert len(hits) == 1, (name, labels, fams.get(name))
    return hits[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int, path: str = "/metrics") -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_running_agent_serves_its_health_figures(tmp_path: Path, mosquitto) -> None:
    csv = tmp_path / "load.csv"
    write_replay_csv(csv, 300)
    port, dead = free_port(), free_port()  # nothing listens on `dead`: that meter never answers
    extra = (f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\n\n'
             f'[lines.tcp]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {dead}\n\n'
             '[[devices]]\nname = "meter"\ntype = "modbus_meter"\nprofile = "sdm120"\nline = "tcp"\n'
             'poll_interval = 0.2\ntimeout = 0.5\n')
    cfg = agent_config(tmp_path, mosquitto, {"load": csv}, extra=extra)
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    try:
        def ready() -> bool:
            try:
                status, _, body = scrape(port)
            except OSError:
                return False
            f = strict_parse(body)
            figures = (("edge_agent_uplink_acked_messages_total", {}),
                       ("edge_agent_device_polls_failed_total", {"device": "meter"}),
                       ("edge_agent_device_polls_ok_total", {"device": "load"}))
            return status == 200 and all(name in f and value(f, name, **labels) > 0 for name, labels in figures)

        assert wait_until(ready, 60), agent.log_tail()
        status, ctype, body = scrape(port)
        missing, _, _ = scrape(port, "/")
    finally:
        agent.terminate()
    assert status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8"
    assert missing == 404
    fams = strict_parse(body)
    assert value(fams, "edge_agent_info", gateway="gw-chaos") == 1
    for gauge in ("buffer_depth_messages", "buffer_bytes", "buffer_oldest_unsent_age_seconds", "uplink_connected",
                  "uplink_publish_rate_messages_per_second", "pipeline_held_messages"):
        assert fams[f"edge_agent_{gauge}"][0] == "gauge"
    assert value(fams, "edge_agent_buffer_bytes") > 0
    assert value(fams, "edge_agent_uplink_connected") == 1
    assert value(fams, "edge_agent_uplink_published_messages_total") >= value(fams, "edge_agent_uplink_acked_messages_total")
    assert value(fams, "edge_agent_uplink_reconnects_total") == 0
    assert {lab["priority"] for lab, _ in fams["edge_agent_buffer_dropped_messages_total"][1]} == {"raw", "agg", "event", "audit"}
    assert value(fams, "edge_agent_device_up", device="load") == 1
    assert value(fams, "edge_agent_device_up", device="meter") == 0
    assert value(fams, "edge_agent_device_poll_latency_seconds", device="load") >= 0
    assert value(fams, "edge_agent_pipeline_readings_total") > 0

    parsed = {f.name: f for f in text_string_to_metric_families(body)}
    assert parsed["edge_agent_uplink_acked_messages"].type == "counter"
    up = {s.labels["device"]: s.value for s in parsed["edge_agent_device_up"].samples}
    assert up == {"load": 1.0, "meter": 0.0}


def test_label_values_and_help_are_escaped() -> None:
    fam = Family("edge_agent_x", "gauge", 'a "help" with \\ and\nnewline')
    fam.add(1.5, device='odd "name" \\ with\nnewline')
    text = render([fam])
    assert text == ('# HELP edge_agent_x a "help" with \\\\ and\\nnewline\n# TYPE edge_agent_x gauge\n'
                    'edge_agent_x{device="odd \\"name\\" \\\\ with\\nnewline"} 1.5\n')
    assert strict_parse(text)["edge_agent_x"][1] == [({"device": 'odd "name" \\ with\nnewline'}, 1.5)]
    (parsed,) = text_string_to_metric_families(text)
    assert parsed.samples[0].labels == {"device": 'odd "name" \\ with\nnewline'}


BASE = '[gateway]\nid = "gw1"\n[mqtt]\nhost = "127.0.0.1"\n'


def test_metrics_are_off_by_default_and_local_unless_remote_is_allowed(tmp_path: Path) -> None:
    cfg = load_config_text(BASE).metrics
    assert (cfg.enabled, cfg.listen, cfg.allow_remote) == (False, "127.0.0.1:9108", False)
    path = tmp_path / "c.toml"
    for listen, ok in (("0.0.0.0:9108", False), ("192.0.2.7:9108", False), ("gw.example:9108", False),
                       ("[::1]:9108", True), ("localhost:9108", True), ("127.0.0.1:9108", True)):
        path.write_text(BASE + f'[metrics]\nenabled = true\nlisten = "{listen}"\n')
        r = CliRunner().invoke(cli, ["check", "--config", str(path)])
        if ok:
            assert r.exit_code == 0, r.output
        else:
            assert r.exit_code == 2, r.output
            assert "metrics: Value error, listen = " in r.output and "set allow_remote = true" in r.output, r.output
    path.write_text(BASE + '[metrics]\nenabled = true\nlisten = "0.0.0.0:9108"\nallow_remote = true\n')
    assert CliRunner().invoke(cli, ["check", "--config", str(path)]).exit_code == 0
    path.write_text(BASE + '[metrics]\nlisten = "9108"\n')
    r = CliRunner().invoke(cli, ["check", "--config", str(path)])
    assert r.exit_code == 2 and "metrics.listen: Value error, '9108' is not HOST:PORT" in r.output, r.output


def test_a_busy_metrics_address_stops_the_start_naming_it(tmp_path: Path, mosquitto) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = agent_config(tmp_path, mosquitto, {}, extra=f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\n')
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        assert agent.proc is not None
        code = agent.proc.wait(60)
    log = agent.log_tail()
    assert code == 1, log
    assert f"metrics endpoint cannot listen on 127.0.0.1:{port}: Address already in use" in log
    assert "Traceback" not in log


def test_adapter_reads_a_typed_health_document_like_the_dict() -> None:
    """The health document may become typed objects: the one adapter reads attributes as it reads keys."""
    from dataclasses import dataclass, field

    from agent.metrics.adapter import families_from_health

    @dataclass
    class Buffer:
        depth: int = 3
        bytes: int = 4096
        oldest_unsent_age_s: float = 12.5
        drops: dict = field(default_factory=lambda: {"raw": 2, "agg": 0})

    @dataclass
    class Device:
        up: bool = True
        latency_ms: float = 12.0
        polls_ok: int = 5

    @dataclass
    class Health:
        gateway: str = "gw1"
        buffer: Buffer = field(default_factory=Buffer)
        devices: dict = field(default_factory=lambda: {"m": Device()})

    typed = Health()
    plain = {"gateway": "gw1", "buffer": {"depth": 3, "bytes": 4096, "oldest_unsent_age_s": 12.5,
                                          "drops": {"raw": 2, "agg": 0}},
             "devices": {"m": {"up": True, "latency_ms": 12.0, "polls_ok": 5}}}
    text = render(families_from_health(typed))
    assert text == render(families_from_health(plain))
    fams = strict_parse(text)
    assert value(fams, "edge_agent_buffer_dropped_messages_total", priority="raw") == 2
    assert value(fams, "edge_agent_device_poll_latency_seconds", device="m") == 0.012
    assert "edge_agent_uplink_connected" not in fams  # not in the document: left out, not reported as 0
