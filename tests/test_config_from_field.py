"""Config from the field: ``scan`` and ``simulate`` print config blocks that ``check`` accepts as
pasted, and ``init`` writes a starter config from a scan of real simulated lines (RTU and TCP)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from drivers.modbus_meter.sim import start

HEAD = '[gateway]\nid = "gw1"\nstate_dir = "{state}"\n\n[mqtt]\nhost = "127.0.0.1"\n\n'
BEGIN, END = "# --- ready-to-paste config ---", "# --- end of config ---"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pasted_block(output: str) -> str:
    assert BEGIN in output and END in output, output
    return output.split(BEGIN, 1)[1].split(END, 1)[0]


def check(path: Path):
    return CliRunner().invoke(cli, ["check", "--config", str(path)])


def check_pasted(tmp_path: Path, block: str):
    cfg = tmp_path / "pasted.toml"
    cfg.write_text(HEAD.format(state=tmp_path / "state") + block)
    return check(cfg)


async def test_scan_prints_blocks_that_check_accepts(tmp_path: Path) -> None:
    port = free_port()
    sim = await start(units={1: "sdm630", 3: "dtsu666"}, update_interval=None, tcp=f"127.0.0.1:{port}")
    try:
        res = await asyncio.to_thread(CliRunner().invoke, cli, ["scan", "--tcp", f"127.0.0.1:{port}",
                                                                "--units", "1-3", "--timeout", "0.2"])
    finally:
        await sim.stop()
    assert res.exit_code == 0, res.output
    block = pasted_block(res.output)
    assert f'[lines.modbus-tcp]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n' in block
    assert 'name = "sdm630-1"\ntype = "modbus_meter"\nprofile = "sdm630"\nunit = 1\nline = "modbus-tcp"' in block
    assert 'profile = "dtsu666"\nunit = 3' in block
    r = check_pasted(tmp_path, block)
    assert r.exit_code == 0, r.output
    assert "2 device(s), 1 line(s)" in r.output


async def test_init_writes_a_config_from_a_scan_that_passes_check(tmp_path: Path) -> None:
    rtu, tcp = free_port(), free_port()
    sims = [await start(units={1: "sdm630", 2: "sdm120"}, update_interval=None, rtu_socket=f"127.0.0.1:{rtu}"),
            await start(units={1: "sdm120"}, update_interval=None, tcp=f"127.0.0.1:{tcp}")]
    out = tmp_path / "config.toml"
    args = ["init", "--gateway-id", "gw1", "--broker", "mqtt.example:8883", "--scan", f"socket://127.0.0.1:{rtu}",
            "--scan-tcp", f"127.0.0.1:{tcp}", "--units", "1-3", "--timeout", "0.2", "-o", str(out)]
    try:
        res = await asyncio.to_thread(CliRunner().invoke, cli, args)
        assert res.exit_code == 0, res.output
        assert "3 device(s)" in res.output
        text = out.read_text()
        # an existing file is left alone without --force, and replaced with it
        again = await asyncio.to_thread(CliRunner().invoke, cli, args)
        assert again.exit_code == 1 and "exists; use --force" in again.output
        assert out.read_text() == text
        forced = await asyncio.to_thread(CliRunner().invoke, cli, [*args, "--force"])
        assert forced.exit_code == 0, forced.output
    finally:
        for s in sims:
            await s.stop()
    assert 'id = "gw1"' in text and 'host = "mqtt.example"\nport = 8883' in text and "[mqtt.tls]" in text
    assert f'port = "socket://127.0.0.1:{rtu}"' in text and f"port = {tcp}" in text
    r = check(out)
    assert r.exit_code == 0, r.output
    for line in ("sdm630-1             modbus_meter     every 5 s on rs485",
                 "sdm120-2             modbus_meter     every 5 s on rs485",
                 "sdm120-1             modbus_meter     every 5 s on modbus-tcp"):
        assert line in r.output, r.output


def test_init_refuses_bad_arguments_and_unopenable_ports(tmp_path: Path) -> None:
    out = tmp_path / "c.toml"
    r = CliRunner().invoke(cli, ["init", "--gateway-id", "gw 1", "--broker", "h", "-o", str(out)])
    assert r.exit_code == 2 and "--gateway-id" in r.output
    r = CliRunner().invoke(cli, ["init", "--gateway-id", "gw1", "--broker", "h:x", "-o", str(out)])
    assert r.exit_code == 2 and "is not HOST:PORT" in r.output
    r = CliRunner().invoke(cli, ["init", "--gateway-id", "gw1", "--broker", "h", "--scan", "/dev/ttyNOPE-x",
                                 "--units", "1", "-o", str(out)])
    assert r.exit_code == 1 and "cannot open line" in r.output
    assert not out.exists()
    # without a scan: gateway and broker only, still valid
    r = CliRunner().invoke(cli, ["init", "--gateway-id", "gw1", "--broker", "broker.local", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "[mqtt.tls]" not in out.read_text() and "port = 1883" in out.read_text()
    assert check(out).exit_code == 0


def simulator_output(*args: str) -> tuple[subprocess.Popen, str]:
    """Start ``edge-agent simulate ...`` and read its output up to the end of the config blocks."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "simulate", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, stdin=subprocess.DEVNULL)
    seen = ""
    assert proc.stdout is not None
    for line in proc.stdout:  # bounded: the process is killed by the caller's finally on failure
        seen += line
        if line.startswith(END):
            break
    return proc, seen


@pytest.mark.parametrize("sim", ["sdm630-tcp", "sdm120-rtu", "pms5003", "modbus-charger", "ocpp-charge-point"])
def test_simulate_prints_config_at_start_that_check_accepts(sim: str, tmp_path: Path) -> None:
    port = free_port()
    args = {"sdm630-tcp": ["sdm630", "--tcp", f"127.0.0.1:{port}"],
            "sdm120-rtu": ["sdm120", "--rtu-socket", f"127.0.0.1:{port}"],
            "pms5003": ["pms5003"],
            "modbus-charger": ["modbus-charger", "--tcp", f"127.0.0.1:{port}", "--count", "2"],
            "ocpp-charge-point": ["ocpp-charge-point", "--url", f"ws://127.0.0.1:{port}", "--id", "CP7"]}[sim]
    proc, out = simulator_output(*args)
    try:
        block = pasted_block(out)
        r = check_pasted(tmp_path, block)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert r.exit_code == 0, out + r.output
    expect = {"sdm630-tcp": "sdm630-1", "sdm120-rtu": "sdm120-1", "pms5003": "pms5003", "modbus-charger": "charx-2",
              "ocpp-charge-point": "cp7"}[sim]
    assert f"  {expect}" in r.output, r.output


async def test_scan_and_init_recognise_the_charx_charger_at_its_default_unit(tmp_path: Path) -> None:
    """The CHARX answers at unit 255 over Modbus TCP: a TCP scan asks 255 by default, names the charger
    profile, and the blocks (and init's file) load as modbus_charger devices."""
    from drivers.modbus_charger.sim import start as start_chargers

    port = free_port()
    handle = await start_chargers(profile="charx", tcp=f"127.0.0.1:{port}", units={255: "charx"})
    out = tmp_path / "init.toml"
    try:
        res = await asyncio.to_thread(CliRunner().invoke, cli, ["scan", "--tcp", f"127.0.0.1:{port}", "--timeout", "0.05"])
        made = await asyncio.to_thread(CliRunner().invoke, cli, [
            "init", "--gateway-id", "gw1", "--broker", "127.0.0.1", "--scan-tcp", f"127.0.0.1:{port}",
            "--units", "250-255", "--timeout", "0.1", "-o", str(out)])
    finally:
        await handle.stop()
    assert res.exit_code == 0, res.output
    assert "unit 255: device present" in res.output and "profile charx (state A)" in res.output, res.output
    block = pasted_block(res.output)
    assert 'name = "charx-255"\ntype = "modbus_charger"\nprofile = "charx"\nunit = 255\nline = "modbus-tcp"' in block
    r = check_pasted(tmp_path, block)
    assert r.exit_code == 0 and "charx-255            modbus_charger" in r.output, r.output
    assert made.exit_code == 0 and "1 device(s) with a known profile" in made.output, made.output
    r = check(out)
    assert r.exit_code == 0 and "charx-255            modbus_charger" in r.output, r.output
