"""Runs the Home Assistant side: announces devices when the uplink connects, removes devices that
left the config, follows each poller's up/down state on its availability topic, and publishes each
device's latest good values on its state topic.

Everything here is published directly on the live connection, never through the outbox: discovery
and availability retained at QoS 1 (announced again on every reconnect), states at QoS 0 and not
retained. A state missed while the broker is away is simply superseded by the next poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import orjson

from agent.model import Quality
from agent.series import LatestValues, SeriesTable

from .announced import AnnouncedTopics
from .discovery import Announcement

if TYPE_CHECKING:
    from .config import HomeAssistantConfig

log = logging.getLogger("edge_agent.homeassistant")
TICK_S = 0.25  # how often availability and new values are looked at
# readings Home Assistant must not see: a bad read of a counter would look like a meter reset
NOT_FOR_HA = int(Quality.OUT_OF_RANGE | Quality.SPIKE | Quality.STALE | Quality.RATE_OF_CHANGE
                 | Quality.DEVICE_FLAGGED | Quality.IMPLAUSIBLE)


class Publisher(Protocol):
    @property
    def connected(self) -> bool: ...

    @property
    def connects(self) -> int: ...

    def publish_raw(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 0) -> bool: ...


class HomeAssistantBridge:
    def __init__(self, cfg: HomeAssistantConfig, *, announcements: Sequence[Announcement],
                 health: Mapping[str, Callable[[], bool | None]], series: SeriesTable, latest: LatestValues,
                 state_dir: Path, publisher: Callable[[], Publisher | None]):
        self.cfg = cfg
        self.announcements = list(announcements)
        self.health = health  # device -> "is it up?" (None until its first poll has ended)
        self.latest = latest
        self.publisher = publisher
        self.store = AnnouncedTopics(state_dir)
        self._ids = {a.device: np.array([series.id(a.device, m) for m in a.metrics], dtype=np.int64)
                     for a in self.announcements}
        self._names = {a.device: a.metrics for a in self.announcements}
        self._announced_on: int | None = None  # the connection (count) discovery was published on
        self._online: dict[str, bool] = {}
        self._last_ts: dict[str, int] = {}
        self.removed = 0  # retained topics cleared for devices no longer configured
        self._error: str | None = None

    async def run(self) -> None:
        while True:
            try:
                self.step()
                self._error = None
            except Exception as e:  # noqa: BLE001 - Home Assistant publishing must never stop the agent
                if repr(e) != self._error:
                    log.exception("Home Assistant publishing failed")
                self._error = repr(e)
            await asyncio.sleep(TICK_S)

    def step(self) -> None:
        pub = self.publisher()
        if pub is None or not pub.connected:
            return
        if self._announced_on != pub.connects:  # a new connection, however short the outage was
            if not self._announce(pub):
                return
            self._announced_on = pub.connects
        for a in self.announcements:
            online = self.health[a.device]()
            if online is not None and online != self._online.get(a.device):
                if pub.publish_raw(a.availability_topic, b"online" if online else b"offline", retain=True, qos=1):
                    self._online[a.device] = online
            if self.cfg.publish_states:
                self._publish_state(pub, a)

    def _announce(self, pub: Publisher) -> bool:
        """Discovery for every device, and empty retained messages for what was announced before but
        is no longer configured. True when every publish was accepted."""
        current = {a.config_topic for a in self.announcements} | {a.availability_topic for a in self.announcements}
        gone = sorted(self.store.load() - current)
        for topic in gone:
            if not pub.publish_raw(topic, b"", retain=True, qos=1):
                return False
        for a in self.announcements:
            if not pub.publish_raw(a.config_topic, orjson.dumps(a.payload), retain=True, qos=1):
                return False
        if gone:
            log.info("Home Assistant: removed %d discovery/availability topics of devices no longer configured",
                     len(gone))
            self.removed += len(gone)
        self.store.save(current)
        self._online.clear()  # availability and states are sent again on every (re)connect
        self._last_ts.clear()
        return True

    def state_body(self, device: str) -> tuple[int, dict[str, float]]:
        """(newest timestamp, metric -> latest good value) for one device."""
        ids = self._ids[device]
        if not len(ids):
            return 0, {}
        ts, values, quality = self.latest.ts[ids], self.latest.value[ids], self.latest.quality[ids]
        good = (ts > 0) & np.isfinite(values) & ((quality & NOT_FOR_HA) == 0)
        names = self._names[device]
        return int(ts.max()), {n: float(v) for n, v, ok in zip(names, values, good, strict=True) if ok}

    def _publish_state(self, pub: Publisher, a: Announcement) -> None:
        newest, body = self.state_body(a.device)
        if newest <= self._last_ts.get(a.device, 0):
            return  # nothing new since the last state: at most one state per poll
        self._last_ts[a.device] = newest
        if body:
            pub.publish_raw(a.state_topic, orjson.dumps(body), qos=0)


def build_bridge(config, *, drivers: Mapping, pollers: Sequence, series: SeriesTable, latest: LatestValues,
                 state_dir: Path, publisher: Callable[[], Publisher | None]) -> HomeAssistantBridge | None:
    """The bridge for an agent config, or None when ``[homeassistant]`` is absent or disabled.
    ``config`` is the AgentConfig; ``drivers`` maps device name -> driver (enabled devices only)."""
    from agent.uplink.topics import Topics

    from .discovery import announce, check_unique

    cfg: HomeAssistantConfig | None = config.homeassistant
    if cfg is None or not cfg.enabled:
        return None
    topics = Topics(config.mqtt.topic_prefix, config.gateway.id)
    announcements = []
    for name, driver in drivers.items():
        dev = config.device(name)
        profile = getattr(dev, "profile", None)
        model = f"{dev.type} {profile}" if isinstance(profile, str) else dev.type
        announcements.append(announce(cfg, topics, name, model, driver.metrics()))
    check_unique(announcements)
    health = {p.name: (lambda p=p: p.health.up if p.health.polls_ok or p.health.polls_failed else None)
              for p in pollers}
    return HomeAssistantBridge(cfg, announcements=announcements, health=health, series=series, latest=latest,
                               state_dir=state_dir, publisher=publisher)
