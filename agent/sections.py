"""The built-in feature sections of the config file, registered with :mod:`agent.config.sections`.

Each feature owns its section model (which depends on the driver contract and pydantic only); this
list is the one place that names them, so the config package imports no feature. Another installed
package registers its sections through the ``edge_agent.sections`` entry-point group.
"""

from __future__ import annotations

from .commands.config import CommandsConfig
from .config.sections import DeviceFacts, Problem, Section
from .homeassistant.config import HomeAssistantConfig
from .metrics.config import MetricsConfig
from .processing.config import ProcessingConfig, metric_problems
from .site.config import SiteConfig, cross_check_site, site_reference_problems
from .web.config import WebConfig


def _processing_references(_: ProcessingConfig, facts: DeviceFacts) -> list[Problem]:
    return [(("devices", i, *sub), msg) for i, specs in facts.metrics.items()
            for sub, msg in metric_problems(facts.devices[i], specs)]


def _site_references(site: SiteConfig, facts: DeviceFacts) -> list[Problem]:
    return site_reference_problems(site, facts.enabled_metrics(), facts.writable)


BUILTIN = (
    Section("processing", ProcessingConfig, "On-gateway processing: windows, quality checks, energy, tariff, "
            "carbon, anomaly detection.", references=_processing_references),
    Section("site", SiteConfig, "Site load management and time-of-use charging.", optional=True,
            cross_check=cross_check_site, references=_site_references),
    Section("commands", CommandsConfig, "Commands to devices over MQTT."),
    Section("homeassistant", HomeAssistantConfig, "Home Assistant MQTT discovery; a [homeassistant] table turns it on.",
            optional=True),
    Section("metrics", MetricsConfig, "Local Prometheus endpoint for the health figures (off by default)."),
    Section("web", WebConfig, "Local status page for a phone or laptop, with writes behind a login (off by default)."),
)
