"""Replay driver: plays a CSV time series as a device."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

from .driver import ReplayDriver

# the config model (pydantic) is imported when validating; a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="replay",
    config_model="drivers.replay.config:ReplayConfig",
    factory=ReplayDriver,
    summary="Plays a timestamp,value CSV (e.g. the NAB corpus) as a device, at real time or faster.",
)

__getattr__ = lazy_exports(__name__, {"ReplayConfig": "drivers.replay.config"})
