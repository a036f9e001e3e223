"""GPIO pulse counters (S0 energy meters, water/gas meters) and digital inputs."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

from .digital import DigitalInputDriver
from .driver import PulseCounterDriver

# the config models (pydantic) are imported when validating; a run on a plain config needs only the drivers
SPEC = DriverSpec(
    type="pulse_counter",
    config_model="drivers.pulse_counter.config:PulseCounterConfig",
    factory=PulseCounterDriver,
    metrics="drivers.pulse_counter.driver:metrics_for",  # validation lists them without building the driver (its line)
    summary="Counts meter pulses on a GPIO pin (debounced, rejected edges counted, restart-safe totals).",
)

DIGITAL_INPUT_SPEC = DriverSpec(
    type="digital_input",
    config_model="drivers.pulse_counter.config:DigitalInputConfig",
    factory=DigitalInputDriver,
    metrics="drivers.pulse_counter.digital:metrics_for",
    summary="A GPIO digital input: state and number of changes.",
)

__getattr__ = lazy_exports(__name__, {"PulseCounterConfig": "drivers.pulse_counter.config", "DigitalInputConfig": "drivers.pulse_counter.config"})
