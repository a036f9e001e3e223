"""Site energy management: a site limit against a grid meter, fair sharing, time-of-use preference."""

from .allocator import Demand, allocate, fair_share
from .config import GridMeterRef, Period, SiteConfig, TouConfig
from .controller import SiteController

__all__ = ["Demand", "GridMeterRef", "Period", "SiteConfig", "SiteController", "TouConfig", "allocate", "fair_share"]
