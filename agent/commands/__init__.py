"""Commands from upstream: validated, authorised, bounded, rate-limited, idempotent, audited.

App wiring is one call::

    router, site = build(config, drivers, latest, series, clock)
    outcome = await router.handle(device, payload)   # for each message on edge/{gw}/cmd/{device}
    events = await site.step(now_ms)                 # every poll interval, when site is not None
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .auth import sign
from .config import AuthMode, CommandsConfig
from .idstore import IdStore
from .router import CommandOutcome, CommandRouter

if TYPE_CHECKING:
    from agent.config.schema import AgentConfig
    from agent.driver import Clock
    from agent.series import LatestValues, SeriesTable
    from agent.site import SiteController, Tariff

__all__ = ["AuthMode", "CommandOutcome", "CommandRouter", "CommandsConfig", "IdStore", "build", "sign"]


def build(
    config: AgentConfig,
    drivers: Mapping[str, Any],
    latest: LatestValues,
    series: SeriesTable,
    clock: Clock,
    *,
    tariff: Tariff | None = None,
) -> tuple[CommandRouter, SiteController | None]:
    """The command router and, if ``[site]`` is configured, the site controller it defers to.

    ``tariff`` is any object with ``period_at(ts_ms)`` / ``price_at(ts_ms)``; without one the site's
    own ``[site.tou]`` schedule is used.
    """
    from agent.site import SiteController, TouSchedule

    devices = {d.name: d for d in config.devices}
    site = None
    if config.site is not None:
        tariff = tariff or TouSchedule(config.site.tou)
        site = SiteController(config.site, drivers, latest, series, clock, tariff,
                              charger_configs={n: devices.get(n) for n in config.site.chargers})
    ids = IdStore(config.gateway.state_dir / "commands.db", limit=config.commands.remember_ids)
    router = CommandRouter(config.commands, devices=devices, drivers=drivers, ids=ids, clock=clock, site=site)
    return router, site
