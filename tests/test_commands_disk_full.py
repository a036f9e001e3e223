"""A command runs at most once and is always answered, also when the state directory's disk is full.

The state directory is a real, tiny tmpfs filled to the last byte; the charger is the real Modbus
charger simulator behind the real driver, so "executed" means registers written on the wire.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from pathlib import Path

import orjson
import pytest

from agent.bus.base import BusPool
from agent.bus.kinds import LINE_KINDS
from agent.bus.modbus_config import ModbusTcpLine
from agent.commands import CommandRouter, CommandsConfig, IdStore
from agent.driver import DriverContext
from drivers.charger_common import Car, ChargerDriver
from drivers.modbus_charger import ModbusChargerConfig, ModbusChargerDriver
from drivers.modbus_charger.sim import start

CURRENT_REGISTER = 0x4100  # ABB Terra AC: current limit, uint32 mA


class SmallDisk:
    """A 512 KiB tmpfs: ``fill()`` takes every free byte, ``free()`` gives it back."""

    def __init__(self, path: Path):
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (65536, 4096, 1):
                try:
                    while os.write(fd, b"\0" * size):
                        pass
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()


@pytest.fixture
def small_disk(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(state)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield SmallDisk(state)
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def charger():
    port = free_port()
    handle = await start(profile="abb_terra_ac", tcp=f"127.0.0.1:{port}")
    pool = BusPool({"lan": ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=port)}, LINE_KINDS)
    cfg = ModbusChargerConfig(name="cp1", type="modbus_charger", line="lan", profile="abb_terra_ac",
                              writable=["current_limit", "start", "stop"])
    drv = ModbusChargerDriver(cfg, DriverContext("gw", Path("."), pool))
    await drv.open()
    sim = next(iter(handle.sims.values()))
    sim.plug(Car(need_wh=50_000))
    yield drv, sim
    await drv.close()
    await pool.close()
    await handle.stop()


def router_on(state: Path, drv) -> CommandRouter:
    return CommandRouter(CommandsConfig(), devices={"cp1": drv.config}, drivers={"cp1": drv},
                         ids=IdStore(state / "commands.db", limit=100))


def limit(cid: str, amps: float) -> bytes:
    return orjson.dumps({"id": cid, "action": "set_current_limit", "value": amps})


def current_writes(sim) -> list[list[int]]:
    return [regs for addr, regs in sim.writes if addr == CURRENT_REGISTER]


async def test_full_disk_refuses_before_touching_the_charger_and_never_runs_twice(small_disk, charger):
    drv, sim = charger
    router = router_on(small_disk.path, drv)
    assert (await router.handle("cp1", limit("c1", 10))).status == "accepted"
    assert current_writes(sim) == [[0, 10000]]

    small_disk.fill()
    out = await router.handle("cp1", limit("c2", 16))
    assert out.status == "refused" and out.result["code"] == "cannot_record", out.result
    assert "full" in out.result["reason"] and "nothing was changed" in out.result["reason"]
    assert out.audit["status"] == "refused" and out.audit["code"] == "cannot_record"
    again = await router.handle("cp1", limit("c2", 16))  # the sender retries: still nothing changes
    assert again.result["code"] == "cannot_record"
    assert current_writes(sim) == [[0, 10000]]

    small_disk.free()
    assert (await router.handle("cp1", limit("c2", 16))).status == "accepted"
    replay = await router.handle("cp1", limit("c2", 16))
    assert replay.result["code"] == "duplicate" and replay.result["original"]["status"] == "accepted"
    router.close()
    restarted = router_on(small_disk.path, drv)
    after_restart = await restarted.handle("cp1", limit("c2", 16))
    assert after_restart.result["code"] == "duplicate"
    restarted.close()
    assert current_writes(sim) == [[0, 10000], [0, 16000]]


class FillsDiskWhileWriting(ChargerDriver):
    """The real driver, but the disk fills up while the charger is being written."""

    def __init__(self, drv, disk: SmallDisk):
        self.drv, self.disk, self.config = drv, disk, drv.config

    async def set_current_limit(self, amps: float) -> float:
        self.disk.fill()
        return await self.drv.set_current_limit(amps)


async def test_outcome_not_recordable_is_still_answered_and_never_repeated(small_disk, charger):
    drv, sim = charger
    router = router_on(small_disk.path, FillsDiskWhileWriting(drv, small_disk))
    out = await router.handle("cp1", limit("d1", 12))
    assert out.status == "accepted" and out.result["applied"] == 12  # executed, and answered
    assert out.audit["status"] == "accepted"
    replay = await router.handle("cp1", limit("d1", 12))
    assert replay.result["code"] == "duplicate" and "could not be recorded" in replay.result["reason"]
    router.close()
    small_disk.free()
    restarted = router_on(small_disk.path, drv)
    after_restart = await restarted.handle("cp1", limit("d1", 12))
    assert after_restart.result["code"] == "duplicate"
    assert after_restart.result["original"]["status"] == "in_progress"
    restarted.close()
    assert current_writes(sim) == [[0, 12000]]
