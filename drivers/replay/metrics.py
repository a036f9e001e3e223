"""What a replay device delivers and the timestamp modes its config offers, without the driver (numpy):
validation lists a device's metrics from here (``DriverSpec.metrics``), and the driver does the same."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from agent.contract import MetricSpec

if TYPE_CHECKING:
    from .config import ReplayConfig


class TimestampMode(enum.StrEnum):
    SHIFT = "shift"
    ORIGINAL = "original"


def metrics_for(config: ReplayConfig) -> list[MetricSpec]:
    return [MetricSpec(config.metric, config.unit)]
