"""Simulation support for driver simulators, tests and demos (not part of the daemon's runtime).

- :mod:`agent.simkit.serial_pty`: the device end of a virtual serial cable (pty) for UART sensors;
- :mod:`agent.simkit.gpio`: a simulated GPIO chip and the ``gpio_sim`` line kind;
- :mod:`agent.simkit.i2c`: the ``i2c_sim`` line kind hosting an emulated chip that a driver package
  registers in the ``edge_agent.i2c_emulators`` entry-point group;
- :mod:`agent.simkit.net`: command-line helpers for network simulators.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class StaticBuses:
    """Ready-made bus handles by line name, to hand a driver outside the agent (``DriverContext.buses``)."""

    def __init__(self, buses: Mapping[str, Any]):
        self._buses = dict(buses)

    def get(self, name: str) -> Any:
        try:
            return self._buses[name]
        except KeyError:
            raise KeyError(f"no line named {name!r} is configured") from None
