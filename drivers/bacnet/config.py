"""The ``bacnet`` device's config: where the device is, which objects are read, what may be written, and
the fault diagnosis's thresholds (models: pydantic, imported when validating; their behaviour is in
:mod:`.objects`, shared with the plain twins the run time reads)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent.contract import DeviceConfig, Frozen

from .fdd import ROLES
from .objects import COMMANDABLE, BacnetBase, ObjectBase, ObjectIdError, parse_oid


class FddParams(Frozen):
    e_temp: float = Field(1.0, gt=0, le=5, description="K: temperature sensor error (G36 epsilon for SAT, MAT, RAT, OAT).")
    fan_heat: float = Field(0.6, ge=0, le=5, description="K: supply fan temperature rise (G36 delta T SF).")
    e_static: float = Field(25.0, gt=0, description="Pa: duct static pressure error.")
    e_speed: float = Field(5.0, gt=0, le=20, description="%: fan speed error (full speed is >= 99 - this).")
    e_signal: float = Field(2.0, gt=0, le=20, description="%: a valve or damper counts as open above this.")
    min_oa: float = Field(20.0, ge=0, le=100, description="%: the damper's minimum outdoor-air position.")
    e_oa: float = Field(15.0, gt=0, le=100, description="%: outdoor-air fraction error.")
    dt_min: float = Field(5.0, gt=0, le=30, description="K: |RAT - OAT| needed to compute the outdoor-air fraction.")
    sat_band: float = Field(1.5, gt=0, le=10, description="K: |SAT - SAT_SP| allowed (APAR set-point tracking).")
    on_count: int = Field(5, ge=1, le=1000, description="Consecutive samples before a fault starts (debounce).")
    off_count: int = Field(5, ge=1, le=1000, description="Consecutive clear samples before a fault ends.")


class ObjectConfig(ObjectBase, Frozen):
    object: str = Field(description='Object identifier: "analog-input,4" (or "ai,4").')
    unit: str = Field("", description="The metric's unit (scan fills it from the object's engineering units).")
    low: float | None = Field(None, description="Writable analog points: the lowest value a command may write.")
    high: float | None = Field(None, description="Writable analog points: the highest value a command may write.")
    priority: int | None = Field(None, ge=1, le=16, description="Write priority for this point (default: the device's).")

    @field_validator("object")
    @classmethod
    def _oid(cls, v: str) -> str:
        try:
            otype, inst = parse_oid(v)
        except ObjectIdError as e:
            raise ValueError(str(e)) from None
        return f"{otype},{inst}"


class BacnetConfig(BacnetBase, DeviceConfig):
    type: Literal["bacnet"]
    address: str = Field(description='The device\'s BACnet/IP address: "192.168.1.50" or "192.168.1.50:47808".')
    device_instance: int = Field(ge=0, le=4194302, description="The device object's instance number (its I-Am).")
    local_address: str = Field("0.0.0.0:47808", description='Where the gateway binds BACnet/IP: "host[/prefix][:port]".')
    local_instance: int = Field(4194300, ge=0, le=4194302, description="The gateway's own device instance on the network.")
    foreign_bbmd: str | None = Field(None, description="Register as a foreign device with this BBMD (host:port) to reach other subnets.")
    foreign_ttl: int = Field(300, ge=30, le=65535, description="Seconds of the foreign-device registration (renewed by the library).")
    objects: dict[str, ObjectConfig] = Field(description='Metric name -> object, e.g. { sat = { object = "analog-input,4", unit = "degC" } }.')
    cov: bool = Field(True, description="Subscribe to change of value (SubscribeCOV); objects the device refuses are polled.")
    cov_lifetime: int = Field(300, ge=10, le=86_400, description="Seconds a COV subscription lasts before it is renewed.")
    per_request: int = Field(20, ge=1, le=200, description="Objects per ReadPropertyMultiple request.")
    request_timeout: float = Field(3.0, gt=0, le=30, description="Seconds to wait for one confirmed request.")
    priority: int = Field(8, ge=1, le=16, description="BACnet priority of writes (8: manual operator; 16 is the controller's own).")
    writable: tuple[str, ...] = Field((), description="Objects commands may write (metric names); analog points need low and high.")
    ahu: dict[str, str] | None = Field(None, description=f"Fault diagnosis: role -> metric ({', '.join(ROLES)}).")
    fdd: FddParams = Field(default_factory=FddParams, description="Fault diagnosis thresholds and debounce.")
    poll_interval: float = Field(60.0, gt=0, le=86_400, description="Seconds between polls.")
    timeout: float = Field(20.0, gt=0, le=600, description="Seconds before a poll counts as failed.")

    @model_validator(mode="after")
    def _consistent(self) -> BacnetConfig:
        for name in self.writable:
            obj = self.objects.get(name)
            if obj is None:
                raise ValueError(f"writable: {name!r} is not one of objects ({', '.join(self.objects)})")
            otype = obj.oid[0]
            if otype not in COMMANDABLE:
                raise ValueError(f"writable: {name!r} is {otype}, which takes no writes (outputs and values do)")
            if otype.startswith("analog") and (obj.low is None or obj.high is None):
                raise ValueError(f"writable: {name!r} needs low and high (the range a command may write)")
        if self.ahu is not None:
            unknown = sorted(set(self.ahu) - set(ROLES))
            if unknown:
                raise ValueError(f"ahu: unknown role(s) {', '.join(unknown)} (known: {', '.join(ROLES)})")
            missing = sorted(m for m in self.ahu.values() if m not in self.objects)
            if missing:
                raise ValueError(f"ahu: {', '.join(missing)} not among objects ({', '.join(self.objects)})")
        if self.request_timeout >= self.timeout:
            raise ValueError(f"request_timeout ({self.request_timeout:g} s) must be shorter than timeout ({self.timeout:g} s)")
        return self
