"""On-gateway processing: quality checks, counters, energy/cost/carbon, windows, anomaly detection.

Importing this package does not import numba; ``Processor`` loads the kernels after pointing the
numba cache at the state directory.
"""

from typing import TYPE_CHECKING

from ..contract.enums import PublishMode
from ..contract.lazy import lazy_exports
from .processor import Processor, ProcessResult
from .tariff import Tariff

# the models (pydantic) on first use: the running agent reads a plain config
__getattr__ = lazy_exports(__name__, dict.fromkeys(["CheckConfig", "EnergyConfig", "ProcessingConfig"], "agent.processing.config"))

if TYPE_CHECKING:
    from .config import CheckConfig, EnergyConfig, ProcessingConfig

__all__ = ["CheckConfig", "EnergyConfig", "ProcessResult", "Processor", "ProcessingConfig", "PublishMode", "Tariff"]
