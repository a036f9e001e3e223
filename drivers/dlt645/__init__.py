"""DL/T 645-2007 / -1997 electricity meters on RS-485 or through a 4G DTU (serial line)."""

from agent.contract import DriverSpec

from .driver import Dlt645Config, Dlt645Driver

SPEC = DriverSpec(
    type="dlt645",
    config_model=Dlt645Config,
    factory=Dlt645Driver,
    summary="DL/T 645-2007/1997 electricity meter (RS-485 or a TCP DTU): energy by tariff, U, I, P, Q, S, PF, f, demand.",
    writable=True,
)
