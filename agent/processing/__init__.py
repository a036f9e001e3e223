"""On-gateway processing: quality checks, counters, energy/cost/carbon, windows, anomaly detection.

Importing this package does not import numba; ``Processor`` loads the kernels after pointing the
numba cache at the state directory.
"""

from typing import TYPE_CHECKING

from ..contract.enums import PublishMode
from ..contract.lazy import lazy_exports

# on first use: the models (pydantic; the running agent reads a plain config) and the processor (numpy;
# validating a config needs neither)
__getattr__ = lazy_exports(__name__, {
    **dict.fromkeys(["CheckConfig", "EnergyConfig", "ProcessingConfig"], "agent.processing.config"),
    **dict.fromkeys(["Processor", "ProcessResult"], "agent.processing.processor"),
    "Tariff": "agent.processing.tariff",
})

if TYPE_CHECKING:
    from .config import CheckConfig, EnergyConfig, ProcessingConfig
    from .processor import Processor, ProcessResult
    from .tariff import Tariff

__all__ = ["CheckConfig", "EnergyConfig", "ProcessResult", "Processor", "ProcessingConfig", "PublishMode", "Tariff"]
