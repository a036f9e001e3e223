"""Device-based discovery messages: one retained message per polled device, all its sensors inside.

Topic ``{discovery_prefix}/device/{node_id}/{device}/config``; payload with the shared ``dev``
(device) and ``o`` (origin) blocks, availability, the state topic, and one ``cmps`` entry per metric
(``platform: sensor``, ``unique_id`` ``{node_id}_{device}_{metric}``). Topic levels and ids are
limited to letters, digits, ``_`` and ``-``; other characters become ``_``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent import __version__
from agent.errors import ConfigError
from agent.model import MetricSpec
from agent.uplink.topics import Topics

from .entities import display_name, entity_for

if TYPE_CHECKING:
    from .config import HomeAssistantConfig

ORIGIN = {"name": "edge-agent", "sw": __version__}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_id(text: str) -> str:
    return _UNSAFE.sub("_", text)


def ha_base(topics: Topics) -> str:
    return f"{topics.base}/ha"


def availability_topic(topics: Topics, device: str) -> str:
    return f"{ha_base(topics)}/{device}/availability"


def state_topic(topics: Topics, device: str) -> str:
    return f"{ha_base(topics)}/{device}/state"


@dataclass(frozen=True)
class Announcement:
    """What the agent tells Home Assistant about one device."""

    device: str
    config_topic: str
    availability_topic: str
    state_topic: str
    payload: dict
    metrics: tuple[str, ...]


def announce(cfg: HomeAssistantConfig, topics: Topics, device: str, model: str,
             metrics: Sequence[MetricSpec]) -> Announcement:
    node = cfg.node_id or safe_id(topics.gateway)
    dev_id = safe_id(device)
    components: dict[str, dict] = {}
    for m in metrics:
        key = safe_id(m.name)
        if key in components:
            raise ConfigError([f"homeassistant: device {device!r} has metrics whose ids clash after replacing "
                               f"characters other than letters, digits, _ and -: {key!r}"])
        e = entity_for(m)
        comp = {"platform": "sensor", "name": display_name(m.name), "unique_id": f"{node}_{dev_id}_{key}",
                "value_template": f"{{{{ value_json[{m.name!r}] | default('') }}}}"}
        if e.device_class:
            comp["device_class"] = e.device_class
        if e.state_class:
            comp["state_class"] = e.state_class
        if e.unit:
            comp["unit_of_measurement"] = e.unit
        if e.display_precision is not None:
            comp["suggested_display_precision"] = e.display_precision
        components[key] = comp
    avail = availability_topic(topics, device)
    state = state_topic(topics, device)
    payload = {
        "dev": {"ids": [f"edge-agent_{node}_{dev_id}"], "name": device, "mdl": model},
        "o": dict(ORIGIN),
        "avty": [{"t": topics.status, "val_tpl": "{{ value_json.state }}"}, {"t": avail}],
        "avty_mode": "all",
        "stat_t": state,
        "qos": 0,
        "cmps": components,
    }
    return Announcement(device, f"{cfg.discovery_prefix}/device/{node}/{dev_id}/config", avail, state, payload,
                        tuple(m.name for m in metrics))


def check_unique(announcements: Sequence[Announcement]) -> None:
    """Two device names that differ only in characters replaced by ``_`` would share ids."""
    seen: dict[str, str] = {}
    for a in announcements:
        other = seen.setdefault(a.config_topic, a.device)
        if other != a.device:
            raise ConfigError([f"homeassistant: devices {other!r} and {a.device!r} get the same discovery id; "
                               f"rename one (letters, digits, _ and - only)"])
