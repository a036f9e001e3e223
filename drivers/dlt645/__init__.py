"""DL/T 645-2007 / -1997 electricity meters on RS-485 or through a 4G DTU (serial line)."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

from .driver import Dlt645Driver

# the config model (pydantic) is imported when validating; a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="dlt645",
    config_model="drivers.dlt645.config:Dlt645Config",
    factory=Dlt645Driver,
    summary="DL/T 645-2007/1997 electricity meter (RS-485 or a TCP DTU): energy by tariff, U, I, P, Q, S, PF, f, demand.",
    writable=True,
)

__getattr__ = lazy_exports(__name__, {"Dlt645Config": "drivers.dlt645.config"})
