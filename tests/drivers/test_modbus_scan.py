"""``edge-agent scan`` against a real simulated RS-485 line (RTU over socket://) and Modbus TCP."""

from __future__ import annotations

import asyncio
import socket

import pytest
from click.testing import CliRunner

from agent.cli.cmd_scan import command, parse_units
from drivers.modbus_meter.sim import Fault, start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["rtu", "tcp"])
async def test_scan_finds_units_guesses_profiles_and_is_honest_about_failures(kind):
    port = free_port()
    where = {"rtu_socket": f"127.0.0.1:{port}"} if kind == "rtu" else {"tcp": f"127.0.0.1:{port}"}
    sim = await start(units={1: "sdm630", 2: "sdm120", 3: "dtsu666", 4: "sdm120", 5: "sdm120", 6: "ddsu666"},
                      update_interval=None, **where)
    sim.set_fault(4, Fault.DEAD)
    sim.set_fault(5, Fault.GARBAGE if kind == "rtu" else Fault.DEAD)
    args = ["--port", f"socket://127.0.0.1:{port}"] if kind == "rtu" else ["--tcp", f"127.0.0.1:{port}"]
    try:
        res = await asyncio.to_thread(CliRunner().invoke, command, [*args, "--units", "1-6", "--timeout", "0.2"])
    finally:
        await sim.stop()
    out = res.output
    assert res.exit_code == 0, out
    assert "unit   1: answers; profile sdm630" in out
    assert "unit   2: answers; profile sdm120" in out
    assert "unit   3: device present, refused FC04 0 with exception 2; profile dtsu666" in out
    assert "unit   6: device present, refused FC04 0 with exception 2; profile ddsu666" in out
    assert "unit   4" not in out
    if kind == "rtu":
        assert "unit   5: garbled reply" in out
        assert "no reply from 1 unit id(s)" in out
    else:
        assert "no reply from 2 unit id(s)" in out


def test_scan_argument_errors_are_clear():
    r = CliRunner().invoke(command, ["--units", "1-5"])
    assert r.exit_code == 2 and "exactly one of --port" in r.output
    r = CliRunner().invoke(command, ["--tcp", "127.0.0.1:1", "--units", "0-300"])
    assert r.exit_code == 2 and "unit ids are 1..255" in r.output
    r = CliRunner().invoke(command, ["--port", "/dev/ttyNOPE-x", "--parity", "X"])
    assert r.exit_code == 2 and "use N, E or O" in r.output
    r = CliRunner().invoke(command, ["--port", "/dev/ttyNOPE-x", "--units", "1"])
    assert r.exit_code == 1 and "cannot open line" in r.output
    assert parse_units("1,3-4,254") == [1, 3, 4, 254]


@pytest.mark.parametrize("kind", ["rtu", "tcp"])
async def test_scan_does_not_count_gateway_exceptions_as_units(kind):
    """10/11 mean a gateway found no device there; 4 is what servers answer for a unit id they lack."""
    port = free_port()
    where = {"rtu_socket": f"127.0.0.1:{port}"} if kind == "rtu" else {"tcp": f"127.0.0.1:{port}"}
    sim = await start(units={1: "sdm630", 2: "sdm120", 3: "sdm120", 4: "dtsu666"}, update_interval=None, **where)
    sim.set_fault(2, Fault.EXCEPTION, code=10)
    sim.set_fault(3, Fault.EXCEPTION, code=11)
    args = ["--port", f"socket://127.0.0.1:{port}"] if kind == "rtu" else ["--tcp", f"127.0.0.1:{port}"]
    try:  # the simulator's server answers exception 4 for the unit ids 5 and 6 it does not serve
        res = await asyncio.to_thread(CliRunner().invoke, command, [*args, "--units", "1-6", "--timeout", "0.2"])
    finally:
        await sim.stop()
    out = res.output
    assert res.exit_code == 0, out
    assert "unit   1: answers; profile sdm630" in out
    assert "unit   4: device present, refused FC04 0 with exception 2; profile dtsu666" in out
    for phantom in (2, 3, 5, 6):
        assert f"unit {phantom:3d}" not in out, out
    assert "no device at 4 unit id(s)" in out


async def test_a_multi_setting_scan_prints_blocks_that_check_accepts(tmp_path):
    """RTU over socket:// ignores the serial settings, so every unit answers at every setting asked:
    the draft must still name one line per port (check refuses two settings on one port)."""
    from agent.config import load_config_text

    port = free_port()
    sim = await start(units={1: "sdm630", 2: "sdm120"}, update_interval=None, rtu_socket=f"127.0.0.1:{port}")
    try:
        res = await asyncio.to_thread(CliRunner().invoke, command, [
            "--port", f"socket://127.0.0.1:{port}", "--units", "1-2", "--baud", "9600,19200", "--parity", "N,E",
            "--timeout", "0.2"])
    finally:
        await sim.stop()
    assert res.exit_code == 0, res.output
    assert res.output.count("unit   1: answers; profile sdm630") == 4
    block = res.output.split("# --- ready-to-paste config ---\n", 1)[1].split("# --- end of config ---", 1)[0]
    assert block.count("[lines.") == 1 and block.count("[[devices]]") == 2, block
    cfg = load_config_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n[mqtt]\nhost = "127.0.0.1"\n' + block)
    assert [d.name for d in cfg.devices] == ["sdm630-1", "sdm120-2"] and len(cfg.lines) == 1


def test_a_unit_found_only_at_another_setting_is_said_not_drafted():
    from agent.cli.cmd_scan import Finding, LineScan, draft_scans
    from agent.simkit.snippets import Draft

    def scan(baud, units):
        line = {"type": "modbus_rtu", "port": "/dev/ttyUSB0", "baudrate": baud, "parity": "N"}
        return LineScan(f"/dev/ttyUSB0 {baud} 8N1", "rs485", line, [Finding(u, "ok", profile="sdm120") for u in units])
    draft = Draft()
    draft_scans(draft, [scan(9600, [1]), scan(19200, [2, 3])])
    assert [line["baudrate"] for line in draft.lines.values()] == [19200]
    assert [d["unit"] for d in draft.devices] == [2, 3]
    assert draft.comments == ["unit 1 (profile sdm120) answers only at /dev/ttyUSB0 9600 8N1: one port takes one "
                              "setting, so it is not in the blocks above; set it to 19200 8N1 (or wire it to its own "
                              "adapter) and scan again"]
