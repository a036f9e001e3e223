"""GPIO pulse counters (S0 energy meters, water/gas meters) and digital inputs."""

from agent.contract import DriverSpec

from .digital import DigitalInputConfig, DigitalInputDriver
from .driver import PulseCounterConfig, PulseCounterDriver

SPEC = DriverSpec(
    type="pulse_counter",
    config_model=PulseCounterConfig,
    factory=PulseCounterDriver,
    summary="Counts meter pulses on a GPIO pin (debounced, rejected edges counted, restart-safe totals).",
)

DIGITAL_INPUT_SPEC = DriverSpec(
    type="digital_input",
    config_model=DigitalInputConfig,
    factory=DigitalInputDriver,
    summary="A GPIO digital input: state and number of changes.",
)
