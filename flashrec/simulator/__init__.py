"""Deterministic flash-sale traffic: batch history files and a paced live stream.

Everything is derived from ``SimulationConfig`` (seed included), so a demo, a test and
a benchmark that use the same config see the same shoppers, items and events.
"""

from flashrec.simulator.catalog import Catalog, check_stock
from flashrec.simulator.config import SimulationConfig
from flashrec.simulator.faults import BAD_KINDS, LandingDay
from flashrec.simulator.flash_sale import SaleInfo, SimulationResult, simulate
from flashrec.simulator.landing import DayFile, HistoryManifest, write_history
from flashrec.simulator.shoppers import Funnel, Shopper
from flashrec.simulator.stream import EmitStats, LiveTraffic, StageStats, emit_stream

__all__ = [
    "BAD_KINDS",
    "Catalog",
    "DayFile",
    "EmitStats",
    "Funnel",
    "HistoryManifest",
    "LandingDay",
    "LiveTraffic",
    "SaleInfo",
    "Shopper",
    "SimulationConfig",
    "SimulationResult",
    "StageStats",
    "check_stock",
    "emit_stream",
    "simulate",
    "write_history",
]
