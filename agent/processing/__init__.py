"""On-gateway processing: quality checks, counters, energy/cost/carbon, windows, anomaly detection.

Importing this package does not import numba; ``Processor`` loads the kernels after pointing the
numba cache at the state directory.
"""

from .config import CheckConfig, EnergyConfig, ProcessingConfig, PublishMode
from .processor import Processor, ProcessResult
from .tariff import Tariff

__all__ = ["CheckConfig", "EnergyConfig", "ProcessResult", "Processor", "ProcessingConfig", "PublishMode", "Tariff"]
