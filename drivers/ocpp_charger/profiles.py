"""SetChargingProfile requests as deployed chargers expect them (OCPP 1.6J).

Defaults: a ``TxDefaultProfile`` on the charger's connector, ``Relative``, stack level 0, in amps.
Per-charger choices, after what evcc found in the field:

* ``profile_purpose = "charge_point_max"``: a ``ChargePointMaxProfile`` on connector 0 caps the whole
  charger (every connector) instead;
* ``profile_kind = "absolute"``: some chargers reject ``Relative`` profiles; an ``Absolute`` one starts
  a minute in the past (evcc's default);
* ``stack_level``: chargers with a vendor profile above level 0 need ours higher to take effect, others
  accept only level 0 (evcc: ``stackLevelZero``);
* ``rate_unit = "W"``: chargers that take only watts get ``A x voltage x phases``;
* ``number_phases``: send ``numberPhases`` (single-phase chargers).
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def profile_request(config: Any, amps: float, now: dt.datetime | None = None) -> Any:
    """The ``call.SetChargingProfile`` that limits ``config``'s charger to ``amps`` per phase."""
    from ocpp.v16 import call
    from ocpp.v16.datatypes import ChargingProfile, ChargingSchedule, ChargingSchedulePeriod
    from ocpp.v16.enums import ChargingProfileKindType, ChargingProfilePurposeType, ChargingRateUnitType

    whole = config.profile_purpose == "charge_point_max"
    watts = config.rate_unit == "W"
    limit = round(amps * config.voltage * config.phases) if watts else round(amps, 1)
    period = ChargingSchedulePeriod(start_period=0, limit=limit,
                                    number_phases=config.phases if config.number_phases else None)
    absolute = config.profile_kind == "absolute"
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=1)
    schedule = ChargingSchedule(
        charging_rate_unit=ChargingRateUnitType.watts if watts else ChargingRateUnitType.amps,
        charging_schedule_period=[period],
        start_schedule=start.strftime("%Y-%m-%dT%H:%M:%SZ") if absolute else None,
    )
    profile = ChargingProfile(
        charging_profile_id=config.profile_id,
        stack_level=config.stack_level,
        charging_profile_purpose=(ChargingProfilePurposeType.charge_point_max_profile if whole
                                  else ChargingProfilePurposeType.tx_default_profile),
        charging_profile_kind=ChargingProfileKindType.absolute if absolute else ChargingProfileKindType.relative,
        charging_schedule=schedule,
    )
    return call.SetChargingProfile(connector_id=0 if whole else config.connector, cs_charging_profiles=profile)
