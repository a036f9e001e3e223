"""The MQTT 5 lane: consumers sharing ``$share/{group}/{prefix}/#`` (mosquitto 2, EMQX, RabbitMQ >= 3.13).

Each consumer keeps a persistent session (fixed client id, clean start off, a session expiry) and
acknowledges by hand (paho ``manual_ack``): a PUBACK goes out only after the batch committed. A
consumer killed mid-batch reconnects with the same client id and the broker redelivers what was not
acknowledged. While it is away, the broker queues its share of messages in its session: size the
broker's queue limit for the longest outage you tolerate (mosquitto: ``max_queued_messages``), or
the messages beyond it are dropped after the gateway got its PUBACK; the gap table shows it.

Deliveries buffered from a previous connection are written but never acknowledged on the new one
(a packet id of an old connection may name another message now); the broker redelivers them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.ingest.batch import StatsReporter, split
from agent.ingest.writer import Writer

log = logging.getLogger("edge_agent.ingest")


class SharedConsumer:
    def __init__(self, hosts: list[tuple[str, int]], dsn: str, *, client_id: str, group: str = "ingest",
                 prefix: str = "edge", batch: int = 500, linger: float = 0.05, session_expiry: int = 3600,
                 stats_file: Path | None = None, stats_interval: float = 5.0, keep_lags: int = 0):
        self.hosts, self.prefix, self.batch, self.linger = hosts, prefix, batch, linger
        self.filter = f"$share/{group}/{prefix}/#"
        self.writer = Writer(dsn, keep_lags=keep_lags)
        self.reporter = StatsReporter(self.writer, stats_file, stats_interval, {"lane": "mqtt5", "group": group})
        self.stop = threading.Event()
        self._inbox: queue.Queue[tuple[int, int, int, str, bytes]] = queue.Queue()
        self._gen = 0  # connection generation: acks only for deliveries of the current connection
        self._lock = threading.Lock()
        self._host_index = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                  manual_ack=True, reconnect_on_failure=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._expiry = session_expiry

    def _on_connect(self, client: mqtt.Client, userdata, flags, reason, props) -> None:
        if reason.is_failure:
            log.warning("broker refused the ingest connection: %s", reason)
            return
        with self._lock:
            self._gen += 1
        log.info("connected (session present: %s); subscribing %s", flags.session_present, self.filter)
        client.subscribe(self.filter, qos=1)
        client.on_subscribe = lambda *_: self.reporter.maybe(force=True)  # subscribed: the stats file says so

    def _on_disconnect(self, client: mqtt.Client, userdata, flags, reason, props) -> None:
        with self._lock:
            self._gen += 1
        if not self.stop.is_set():
            log.warning("ingest connection lost: %s", reason)
            if len(self.hosts) > 1:  # paho reconnects to the next broker in the list
                self._host_index += 1
                host, port = self.hosts[self._host_index % len(self.hosts)]
                client._host, client._port = host, port  # the public setters refuse while paho is closing

    def _on_message(self, client: mqtt.Client, userdata, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put((self._gen, msg.mid, msg.qos, msg.topic, bytes(msg.payload)))

    def run(self) -> Writer:
        self.writer.connect()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._expiry
        props.ReceiveMaximum = min(65535, 2 * self.batch)
        host, port = self.hosts[0]
        self.client.reconnect_delay_set(0.5, 5)
        self.client.connect_async(host, port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()
        try:
            while not self.stop.is_set():
                try:
                    first = self._inbox.get(timeout=1.0)
                except queue.Empty:
                    self.reporter.maybe()
                    continue
                got = [first]
                deadline = time.monotonic() + self.linger
                while len(got) < self.batch:
                    left = deadline - time.monotonic()
                    try:
                        got.append(self._inbox.get(timeout=max(0.0, left)) if left > 0 else self._inbox.get_nowait())
                    except queue.Empty:
                        break
                msgs, statuses, rejected = split(((t, p) for _, _, _, t, p in got), self.prefix)
                self.writer.write(msgs, statuses, rejected, stop=self.stop.is_set)
                with self._lock:
                    gen = self._gen
                for g, mid, qos, _, _ in got:  # only after the commit
                    if g == gen and qos > 0:
                        self.client.ack(mid, qos)
                self.reporter.maybe()
        finally:
            self.reporter.maybe(force=True)
            self.client.disconnect()
            self.client.loop_stop()
            self.writer.close()
        return self.writer
