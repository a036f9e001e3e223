"""The ``ocpp_charger`` device config and the ``ocpp`` line's (models: pydantic, imported when validating)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from agent.contract import LineConfig
from drivers.charger_common.config import ChargerConfig

from .session import OCPP_BUS


class OcppLineConfig(LineConfig):
    """The local central system: a websocket server OCPP 1.6J charge points connect to."""

    BUS: ClassVar[str | None] = OCPP_BUS

    type: Literal["ocpp"]
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(9000, ge=1, le=65535)
    heartbeat_interval: int = Field(60, ge=5, le=86_400, description="Heartbeat interval given to charge points (s).")
    response_timeout: float = Field(15.0, gt=0, le=120, description="Seconds to wait for a charge point's answer.")


class OcppChargerConfig(ChargerConfig):
    BUS: ClassVar[str | None] = OCPP_BUS

    type: Literal["ocpp_charger"]
    line: str = Field(description="Name of the OCPP line (the local central system) this charger connects to.")
    charge_point_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,48}$", description="The id in the charger's URL path.")
    connector: int = Field(1, ge=1, le=16)
    id_tag: str = Field("EDGE-AGENT", min_length=1, max_length=20, description="idTag used for remote starts.")
    profile_purpose: Literal["tx_default", "charge_point_max"] = Field(
        "tx_default", description="TxDefaultProfile on the connector, or ChargePointMaxProfile (connector 0) for the whole charger.")
    profile_kind: Literal["relative", "absolute"] = Field("relative", description="Absolute for chargers that reject Relative profiles.")
    stack_level: int = Field(0, ge=0, le=100, description="Stack level of our profile (above a vendor profile, or 0).")
    profile_id: int = Field(1, ge=1, description="chargingProfileId; a new profile with the same id replaces ours.")
    rate_unit: Literal["A", "W"] = Field("A", description="W for chargers that take limits only in watts.")
    number_phases: bool = Field(False, description="Send numberPhases (the charger's phases) with the limit.")
