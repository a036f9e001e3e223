"""Config bases: the frozen model, device names, the device config every driver extends, line configs.

A device config is the driver's own keys on top of :class:`DeviceConfig`; a device on a shared bus
adds the bus's mixin (:mod:`agent.contract.modbus` and friends), which brings the ``line`` key and
the addressing that bus needs. A line kind's config extends :class:`LineConfig` and names the bus
family (``BUS``) whose handle it provides, so any line kind of that family serves such a device.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .bases import DeviceBase, LineBase
from .options import CheckConfig, EnergyConfig, PublishMode

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Frozen(BaseModel):
    """Every config model is frozen and forbids unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False, defer_build=True)


class DeviceConfig(DeviceBase, Frozen):
    """Fields every device has. Drivers subclass this with their own keys.

    ``BUS`` names the bus family a device on a shared line needs ("modbus", "serial", "i2c",
    "gpio", or a family a third-party line kind provides); the bus mixins set it. The behaviour
    lives in :class:`~agent.contract.bases.DeviceBase`, shared with the run time's plain twin.
    """

    BUS: ClassVar[str | None] = None

    name: Name
    type: str
    enabled: bool = Field(True, description="Set false to keep a device in the file without polling it.")
    poll_interval: float = Field(5.0, gt=0, le=86_400, description="Seconds between polls.")
    timeout: float = Field(2.0, gt=0, le=600, description="Seconds before a poll counts as failed.")
    jitter: float = Field(0.05, ge=0, le=0.5, description="Random fraction of the interval added to each poll (drawn afresh each time on the interval's grid: the poll rate stays the interval). Devices on one line with the same interval and jitter share each draw, so their polls fall due together.")
    backoff_max: float = Field(300.0, gt=0, description="Longest wait between polls of a failing device.")
    stale_after: float | None = Field(None, gt=0, description="Seconds without a good poll before a device is stale; default 3 intervals.")
    publish: PublishMode = Field(PublishMode.RAW, description="raw readings, window aggregates (agg), or both.")
    checks: dict[str, CheckConfig] = Field(default_factory=dict, description="Quality checks keyed by metric.")
    energy: EnergyConfig | None = Field(None, description="Energy source metric; default: the device's single kWh counter.")
    anomaly: bool | tuple[str, ...] = Field(True, description="Anomaly detection on the gauges that carry information of their own (the driver says which; not derived or max-hold registers), none, or the listed metrics.")


class LineConfig(LineBase, Frozen):
    """A shared transport. Line kinds subclass this and register through ``edge_agent.lines``.

    ``BUS`` is the bus family whose handle the line provides (see the bus mixins).
    """

    BUS: ClassVar[str | None] = None

    type: str


class LineDevice(DeviceConfig):
    """A device on a shared line: the ``line`` key names it under ``[lines]``."""

    line: str = Field(description="Name of the line (see [lines]) this device is on.")
