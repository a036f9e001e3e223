"""Site energy management: a site limit against a grid meter, fair sharing, time-of-use preference."""

from .allocator import Demand, allocate, fair_share
from .config import GridMeterRef, Period, SiteConfig, TouConfig, TouWindow
from .controller import SiteController
from .tou import Tariff, TouSchedule

__all__ = ["Demand", "GridMeterRef", "Period", "SiteConfig", "SiteController", "Tariff", "TouConfig",
           "TouSchedule", "TouWindow", "allocate", "fair_share"]
