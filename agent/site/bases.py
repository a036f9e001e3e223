"""What the site controller asks of its config, without pydantic: the enums and the models' behaviour.

The models (:mod:`agent.site.config`) inherit these mixins and validate; the running agent may read
their plain twins (:mod:`agent.contract.plain`) instead, which carry the same behaviour.
"""

from __future__ import annotations

import enum


class Period(enum.StrEnum):
    PEAK = "peak"
    FLAT = "flat"
    VALLEY = "valley"


class Mode(enum.StrEnum):
    """A charger's charging mode (``[site.solar]``)."""

    OFF = "off"
    NOW = "now"
    MINPV = "minpv"
    PV = "pv"


class TouBase:
    """Mixin of :class:`~agent.site.config.TouConfig`."""

    def cap_w(self, period: str) -> float | None:
        """Most charging power in ``period`` (W), None for no cap beyond the site limit."""
        kw = {Period.FLAT.value: self.flat_max_kw, Period.VALLEY.value: self.valley_max_kw}.get(period, self.peak_max_kw)
        return None if kw is None else kw * 1000


class SiteBase:
    """Mixin of :class:`~agent.site.config.SiteConfig`."""

    @property
    def limit_w(self) -> float:
        if self.limit_kw is not None:
            return self.limit_kw * 1000.0
        assert self.limit_a is not None
        return self.limit_a * self.voltage * self.phases
