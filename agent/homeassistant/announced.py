"""The discovery and availability topics announced last, kept in the state directory so entities
of a device that left the config can be removed (an empty retained message) after a restart."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import orjson

log = logging.getLogger("edge_agent.homeassistant")
FILE_NAME = "homeassistant.json"


class AnnouncedTopics:
    def __init__(self, state_dir: Path):
        self.path = state_dir / FILE_NAME

    def load(self) -> set[str]:
        try:
            data = orjson.loads(self.path.read_bytes())
            return {t for t in data.get("retained_topics", []) if isinstance(t, str)}
        except FileNotFoundError:
            return set()
        except (OSError, ValueError, AttributeError) as e:
            log.warning("cannot read %s (%s): entities of removed devices may stay in Home Assistant", self.path, e)
            return set()

    def save(self, topics: set[str]) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_bytes(orjson.dumps({"retained_topics": sorted(topics)}, option=orjson.OPT_INDENT_2))
            os.replace(tmp, self.path)
        except OSError as e:
            log.warning("cannot write %s: %s", self.path, e)
            with contextlib.suppress(OSError):
                tmp.unlink()
