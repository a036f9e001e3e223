"""What a meter delivers, without the driver (numpy): validation lists a device's metrics from here
(``DriverSpec.metrics``), and the driver does the same. Listing plans the requests as building the
driver does, so a register map the plan cannot read is refused here with the same error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.contract import MetricSpec

from .facts import metric_facts
from .planner import Item, Request, plan

if TYPE_CHECKING:
    from .codec import RegisterSpec
    from .config import ModbusMeterConfig


def request_plan(config: ModbusMeterConfig, registers: Sequence[RegisterSpec]) -> list[Request]:
    """The requests that read ``registers`` (the config's, resolved) within the meter's limits."""
    max_regs, max_gap = config.limits()
    items = [Item(i, r.fc, r.address, r.count) for i, r in enumerate(registers)]
    return plan(items, max_registers=max_regs, max_gap=max_gap)


def metrics_for(config: ModbusMeterConfig) -> list[MetricSpec]:
    registers = config.resolved_registers()
    request_plan(config, registers)
    return listed(config, registers)


def listed(config: ModbusMeterConfig, registers: Sequence[RegisterSpec]) -> list[MetricSpec]:
    """The metrics of ``registers`` with what the profile's rating says of them."""
    info = config.profile_info()
    return [metric_facts(r.metric(), info) for r in registers]
