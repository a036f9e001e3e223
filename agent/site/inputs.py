"""The tariff and emission factors the site controller plans with: the ones energy accounting uses.

The agent has one tariff, ``[processing.tariff]`` in ``processing.timezone``: the site prices, caps
and plans by it (a period named ``critical`` or any other name but ``flat`` and ``valley`` is capped
like ``peak``), and the energy ledger bills by it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.processing.carbon import CarbonFactors
from agent.processing.tariff import Tariff

if TYPE_CHECKING:
    from agent.config.schema import AgentConfig


def site_tariff(config: AgentConfig) -> Tariff:
    """The configured tariff (for callers without a running processor; the agent shares its instance)."""
    return Tariff(config.processing.tariff, tz=config.processing.timezone)


def site_carbon(config: AgentConfig) -> CarbonFactors:
    return CarbonFactors.from_config(config.processing)
