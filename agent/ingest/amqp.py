"""The AMQP lane: competing consumers on a RabbitMQ quorum queue bound to ``amq.topic``.

RabbitMQ's MQTT plugin publishes every MQTT message to ``amq.topic`` with the topic as routing key,
``/`` turned into ``.`` (and ``.`` into ``/``). One durable quorum queue bound to the gateway topics
holds everything for the ingest; each consumer takes up to ``batch`` deliveries (prefetch 2 x batch),
commits them in one transaction and only then acknowledges them (``multiple=True`` up to the batch's
last delivery tag). A consumer killed mid-batch never acknowledged anything of that batch: the queue
hands it to another consumer, and the ledger drops what had been committed before.

Nodes are tried in turn; after a lost connection the next one is used. Deliveries buffered from a
dead channel are discarded (their tags mean nothing on a new channel; the broker redelivers them).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from agent.ingest.batch import StatsReporter, split
from agent.ingest.writer import Writer

log = logging.getLogger("edge_agent.ingest")

SUBTOPICS = ("telemetry.*", "agg.*", "event", "audit", "cmd.*.result", "health", "status")


def amqp_escape(topic: str) -> str:
    """MQTT topic -> AMQP routing key, as RabbitMQ's MQTT plugin maps it."""
    return topic.translate(str.maketrans({"/": ".", ".": "/"}))


def bindings(prefix: str) -> list[str]:
    return [f"{amqp_escape(prefix)}.*.{s}" for s in SUBTOPICS]


async def consume(urls: list[str], dsn: str, *, queue: str = "edge-ingest", prefix: str = "edge",
                  batch: int = 500, linger: float = 0.05, stop: asyncio.Event | None = None,
                  stats_file: Path | None = None, stats_interval: float = 5.0, keep_lags: int = 0) -> Writer:
    stop = stop or asyncio.Event()
    writer = Writer(dsn, keep_lags=keep_lags)
    await asyncio.to_thread(writer.connect)  # migrations are a separate step (edge-agent ingest migrate)
    reporter = StatsReporter(writer, stats_file, stats_interval, {"lane": "amqp", "queue": queue})
    i = 0
    while not stop.is_set():
        url = urls[i % len(urls)]
        i += 1
        try:
            await _session(url, writer, reporter, queue=queue, prefix=prefix, batch=batch, linger=linger, stop=stop)
        except (TimeoutError, aio_pika.exceptions.AMQPError, aio_pika.exceptions.ChannelInvalidStateError,
                ConnectionError, OSError) as e:  # e.g. the channel died while acknowledging: those come again
            log.warning("AMQP %s: %s; trying the next node", _where(url), e or type(e).__name__)
            await asyncio.sleep(0.5 if i % len(urls) else 2.0)
    reporter.maybe(force=True)
    await asyncio.to_thread(writer.close)
    return writer


def _where(url: str) -> str:
    return url.rsplit("@", 1)[-1]


async def _session(url: str, writer: Writer, reporter: StatsReporter, *, queue: str, prefix: str, batch: int,
                   linger: float, stop: asyncio.Event) -> None:
    conn = await aio_pika.connect(url, timeout=10)
    try:
        channel = await conn.channel()
        await channel.set_qos(prefetch_count=2 * batch)
        q = await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        for key in bindings(prefix):
            await q.bind("amq.topic", routing_key=key)
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        await q.consume(inbox.put, no_ack=False)
        log.info("consuming %s on %s", queue, _where(url))
        reporter.extra["node"] = _where(url)
        reporter.maybe(force=True)  # the queue and its bindings exist: the stats file says so
        while not stop.is_set():
            if conn.is_closed or channel.is_closed:
                raise ConnectionError("connection closed")
            try:
                first = await asyncio.wait_for(inbox.get(), 1.0)
            except TimeoutError:
                reporter.maybe()
                continue
            got = [first]
            deadline = asyncio.get_running_loop().time() + linger
            while len(got) < batch:
                try:
                    got.append(inbox.get_nowait())
                except asyncio.QueueEmpty:
                    left = deadline - asyncio.get_running_loop().time()
                    if left <= 0:
                        break
                    try:
                        got.append(await asyncio.wait_for(inbox.get(), left))
                    except TimeoutError:
                        break
            msgs, statuses, rejected = split(((amqp_escape(m.routing_key or ""), m.body) for m in got), prefix)
            await asyncio.to_thread(writer.write, msgs, statuses, rejected, stop=stop.is_set)
            await got[-1].ack(multiple=True)  # only after the commit
            reporter.maybe()
    finally:
        await conn.close()
