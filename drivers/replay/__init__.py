"""Replay driver: plays a CSV time series as a device."""

from agent.contract import DriverSpec

from .driver import ReplayConfig, ReplayDriver

SPEC = DriverSpec(
    type="replay",
    config_model=ReplayConfig,
    factory=ReplayDriver,
    summary="Plays a timestamp,value CSV (e.g. the NAB corpus) as a device, at real time or faster.",
)
