"""Commands from upstream: validated, authorised, bounded, rate-limited, idempotent, audited.

Every write to a device, whoever asks (a command, the site controller), goes through one
:class:`WriteGate`. App wiring is one call::

    router, site = build(config, drivers, latest, series, clock, tariff=..., carbon=..., audit=sink)
    outcome = await router.handle(device, payload)   # for each message on edge/{gw}/cmd/{device}
    events = await site.step(now_ms)                 # every poll interval, when site is not None
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .auth import sign
from .config import AuthMode, CommandsConfig
from .gate import SITE, AuditSink, WriteGate, Writer
from .idstore import IdStore
from .parse import Code, Refusal
from .router import CommandOutcome, CommandRouter

if TYPE_CHECKING:
    from agent.config.schema import AgentConfig
    from agent.driver import Clock
    from agent.processing.carbon import CarbonFactors
    from agent.processing.tariff import Tariff
    from agent.series import LatestValues, SeriesTable
    from agent.site import SiteController

__all__ = ["SITE", "AuditSink", "AuthMode", "Code", "CommandOutcome", "CommandRouter", "CommandsConfig", "IdStore",
           "Refusal", "WriteGate", "Writer", "build", "sign"]


def build(
    config: AgentConfig,
    drivers: Mapping[str, object],
    latest: LatestValues,
    series: SeriesTable,
    clock: Clock,
    *,
    tariff: Tariff,
    carbon: CarbonFactors | None = None,
    audit: AuditSink | None = None,
) -> tuple[CommandRouter, SiteController | None]:
    """The command router and, if ``[site]`` is configured, the site controller it defers to, sharing
    one write gate that audits into ``audit``. ``tariff``: the agent's one tariff (the energy ledger's)."""
    from agent.site import SiteController

    devices = {d.name: d for d in config.devices}
    gate = WriteGate(devices, drivers, clock, timeout=config.commands.write_timeout, audit=audit)
    site = None
    if config.site is not None:
        chargers = {n: devices[n] for n in config.site.chargers}
        site = SiteController(config.site, drivers, latest, series, clock, tariff, charger_configs=chargers,
                              carbon=carbon, gate=gate)
    ids = IdStore(config.gateway.state_dir / "commands.db", limit=config.commands.remember_ids)
    router = CommandRouter(config.commands, devices=devices, drivers=drivers, ids=ids, clock=clock, site=site,
                           gate=gate)
    return router, site
