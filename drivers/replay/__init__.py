"""Replay driver: plays a CSV time series as a device."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

# the config model (pydantic) is imported when validating, which lists the metrics without the driver
# (numpy); a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="replay",
    config_model="drivers.replay.config:ReplayConfig",
    factory="drivers.replay.driver:ReplayDriver",
    metrics="drivers.replay.metrics:metrics_for",
    summary="Plays a timestamp,value CSV (e.g. the NAB corpus) as a device, at real time or faster.",
)

__getattr__ = lazy_exports(__name__, {"ReplayConfig": "drivers.replay.config", "ReplayDriver": "drivers.replay.driver"})
