"""Acknowledgements do not make the uplink read the outbox again when nothing new was committed.

A steady gateway commits a few messages per cycle and has them all in flight at once; their PUBACKs
used to refill the window with a read of the outbox each, which found nothing. Counted, not timed: the
outbox's reads per committed burst, with a real mosquitto.
"""

from __future__ import annotations

from test_uplink import Running, config, telemetry, until

from agent.store import Outbox

BURSTS = 5
ROWS = 10


class CountingOutbox(Outbox):
    reads = 0

    def peek(self, *args, **kwargs):
        self.reads += 1
        return super().peek(*args, **kwargs)


async def test_pubacks_do_not_reread_the_outbox(mosquitto, tmp_path) -> None:
    outbox = CountingOutbox(tmp_path / "outbox.db", max_bytes=64 * 1024 * 1024, gateway="gw1")
    try:
        async with Running(config(mosquitto), outbox) as up:
            await until(lambda: up.connected, what="connected")
            base = outbox.reads
            for burst in range(BURSTS):
                outbox.append([telemetry(burst * ROWS + k) for k in range(ROWS)])
                up.wake()
                await until(lambda b=burst: up.stats().acked == (b + 1) * ROWS, what="burst acknowledged")
            reads = outbox.reads - base
            assert outbox.unsent == 0
        # per burst: one read takes the new rows, one finds the end; PUBACKs read nothing more
        assert reads <= 2 * BURSTS, reads
    finally:
        outbox.close()
