"""The last PUBACKs of a burst (the end of a backlog drain) are not held back by a delayed TCP ACK.

mosquitto leaves Nagle on: a PUBACK waits for our ACK of the previous one, and once the uplink has
nothing more to publish the kernel delays that ACK by 40 ms or more, so every burst ended 40 ms late (a
10 k-reading drain ran at half speed). Counted, not timed: the run happens in a network namespace of
its own (``unshare -n``) with a real mosquitto, and the kernel's count of delayed ACKs in it is read
(TcpExt DelayedACKs), which nothing else on the machine touches.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

BURSTS = 10
ROWS = 100  # messages per burst, each of 100 readings like a drain's


def _unshare_works() -> bool:
    exe = shutil.which("unshare")
    return exe is not None and subprocess.run([exe, "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -n (root or user namespaces)")
def test_a_burst_ends_without_a_delayed_ack() -> None:
    out = subprocess.run(["unshare", "-n", sys.executable, __file__], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["acked"] == BURSTS * ROWS
    # before: one delayed ACK (40 ms) at the end of nearly every burst; now none waits for the timer
    assert result["delayed_acks"] < BURSTS // 2, result


def _lo_up() -> None:
    """Bring up the loopback of a new network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS, IFF_UP)."""
    with socket.socket() as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))


def _delayed_acks() -> int:
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines() if line.startswith("TcpExt:")]
    return int(lines[1][lines[0].index("DelayedACKs")])


async def _bursts(directory: Path) -> dict:
    from mqtt_helpers import Broker
    from test_uplink import GW, Running, config, telemetry, until

    from agent.store import Outbox

    with Broker(directory / "broker") as broker, \
            Outbox(directory / "outbox.db", max_bytes=256 << 20, gateway=GW) as outbox:
        async with Running(config(broker), outbox) as up:
            await until(lambda: up.connected, what="connected")
            await asyncio.sleep(0.3)  # the birth message and subscription settle
            before = _delayed_acks()
            for b in range(BURSTS):
                outbox.append([telemetry(b * ROWS + k, 100) for k in range(ROWS)])
                up.wake()
                await until(lambda b=b: up.stats().acked >= (b + 1) * ROWS, what=f"burst {b} acknowledged")
            delayed = _delayed_acks() - before
            acked = up.stats().acked
    return {"delayed_acks": delayed, "acked": acked}


if __name__ == "__main__":  # inside the namespace
    _lo_up()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(_bursts(Path(tmp)))))
