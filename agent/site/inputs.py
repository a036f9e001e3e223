"""The tariff and emission factors the site controller plans with, from the ``[processing]`` section.

One tariff for the whole agent: when ``[processing.tariff]`` is configured, the site prices, caps and
plans by it (a period named ``critical`` or any other unknown name is capped like ``peak``); otherwise
the site falls back to its own ``[site.tou]`` windows.
"""

from __future__ import annotations

from typing import Any


def site_tariff(config: Any) -> Any:
    pc = getattr(config, "processing", None)
    if getattr(config, "site", None) is None or pc is None or "tariff" not in pc.model_fields_set:
        return None
    from agent.processing.tariff import Tariff

    return Tariff(pc.tariff, tz=pc.timezone)


def site_carbon(config: Any) -> Any:
    pc = getattr(config, "processing", None)
    if getattr(config, "site", None) is None or pc is None:
        return None
    from agent.processing.carbon import CarbonFactors

    return CarbonFactors.from_config(pc)
