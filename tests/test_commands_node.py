"""Commands for a device that is not a charger: an mcu_node's declared, bounded points over the command path.

The node simulator runs in its own process on a pty, as a real node on a UART would; the router,
the write gate and the driver are the agent's own.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.commands import CommandRouter, CommandsConfig, IdStore, WriteGate, sign
from agent.simkit.conformance import SimDevice, build_driver
from firmware_bridge import SPEC as MCU_NODE


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000_000

    def now_ms(self) -> int:
        return self.t

    def monotonic(self) -> float:
        return self.t / 1000


async def until(pred, timeout: float = 60.0) -> None:  # a simulator subprocess starts first
    end = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def node_link(tmp_path: Path):
    link = tmp_path / "node"
    sim = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "simulate", "mcu-node", "--link", str(link),
                            "--interval-ms", "50"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield link
    finally:
        sim.terminate()
        sim.wait(10)


def cmd(**kw: Any) -> bytes:
    return orjson.dumps(kw)


async def with_router(link: Path, tmp_path: Path, check, **commands: Any) -> list[dict[str, Any]]:
    await until(link.exists)
    sim = SimDevice(device={"type": "mcu_node", "line": "node", "timeout": 2.0, "wait": 1.0,
                            "writable": ["interval_ms", "output0"], "interval_bounds": [100, 2000]},
                    lines={"node": {"type": "serial", "port": str(link), "baudrate": 115200}})
    driver, pool = build_driver(MCU_NODE, sim, tmp_path / "state")
    writes: list[dict[str, Any]] = []
    clock = Clock()
    gate = WriteGate({"dut": driver.config}, {"dut": driver}, clock, audit=writes.append)
    router = CommandRouter(CommandsConfig.model_validate(commands), devices={"dut": driver.config},
                           drivers={"dut": driver}, ids=IdStore(tmp_path / "commands.db", limit=100), clock=clock, gate=gate)
    try:
        await driver.open()
        await check(router, driver)
    finally:
        router.close()
        await pool.close()
    return writes


def test_set_interval_and_output_reach_the_node_within_bounds(node_link, tmp_path):
    async def check(router: CommandRouter, driver) -> None:
        out = await router.handle("dut", cmd(id="i1", action="set_interval", value=500))
        assert out.status == "accepted", out.result
        assert out.result["applied"] == 500  # the interval the node reports in force

        out = await router.handle("dut", cmd(id="o1", action="set_output", output=0, value=1))
        assert out.status == "accepted", out.result
        assert out.result["output"] == 0 and out.result["applied"] == 1
        seen: list[float] = []
        for _ in range(20):  # the node now reports its output on
            seen += [s.value for s in await driver.read() if s.metric == "output0"]
            if seen and seen[-1] == 1:
                break
        assert seen and seen[-1] == 1

        again = await router.handle("dut", cmd(id="i1", action="set_interval", value=700))
        assert again.result["code"] == "duplicate" and again.result["original"]["status"] == "accepted"

    writes = asyncio.run(with_router(node_link, tmp_path, check))
    assert [(w["point"], w["value"], w["status"], w["applied"], w["command_id"]) for w in writes] == [
        ("interval_ms", 500.0, "accepted", 500, "i1"), ("output0", 1.0, "accepted", 1, "o1")]


def test_out_of_bounds_and_undeclared_points_are_refused_and_audited(node_link, tmp_path):
    async def check(router: CommandRouter, driver) -> None:
        out = await router.handle("dut", cmd(id="i1", action="set_interval", value=5000))  # the node would take it
        assert out.result["status"] == "refused" and out.result["code"] == "out_of_range"
        assert out.result["reason"] == "interval_ms 5000 ms is outside [100, 2000] ms"
        assert out.audit["kind"] == "command" and out.audit["code"] == "out_of_range"

        out = await router.handle("dut", cmd(id="o1", action="set_output", output=1, value=1))
        assert out.result["code"] == "not_writable"
        assert out.result["reason"] == "'output1' is not declared writable for 'dut'"

        out = await router.handle("dut", cmd(id="o2", action="set_output", output=0, value=0.5))
        assert out.result["code"] == "out_of_range" and "whole number" in out.result["reason"]

        out = await router.handle("dut", cmd(id="o3", action="set_output", value=1))
        assert out.result["code"] == "malformed" and '"output"' in out.result["reason"]

        again = await router.handle("dut", cmd(id="i1", action="set_interval", value=500))
        assert again.result["code"] == "duplicate"  # a refused id is remembered too

        # nothing refused reached the node; a write within bounds still does
        ok = await router.handle("dut", cmd(id="i2", action="set_interval", value=100))
        assert ok.status == "accepted" and ok.result["applied"] == 100

    writes = asyncio.run(with_router(node_link, tmp_path, check))
    assert [w["command_id"] for w in writes] == ["i2"]  # refused before any device write


def test_hmac_signs_the_output_number(node_link, tmp_path):
    async def check(router: CommandRouter, driver) -> None:
        token = sign("s3cret", "dut", "o1", "set_output", 1, None, 0)
        forged = await router.handle("dut", cmd(id="o1", action="set_output", output=3, value=1, token=token))
        assert forged.result["code"] == "unauthorised"
        out = await router.handle("dut", cmd(id="o2", action="set_output", output=0, value=1,
                                             token=sign("s3cret", "dut", "o2", "set_output", 1, None, 0)))
        assert out.status == "accepted", out.result

    asyncio.run(with_router(node_link, tmp_path, check, auth="hmac", secret="s3cret"))


def test_a_charger_declares_its_points_like_any_device(tmp_path):
    from drivers.charger_common import ChargerConfig
    cfg = ChargerConfig.model_validate(dict(name="cp1", type="test_charger", writable=["current_limit"]))
    gate = WriteGate({"cp1": cfg}, {}, Clock())
    assert set(gate.declared("cp1")) == {"current_limit"}  # one vocabulary: chargers declare points too
    assert gate.points("cp1")["current_limit"].meaning == "amps offered per phase; 0 pauses"
