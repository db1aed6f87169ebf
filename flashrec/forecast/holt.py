"""Holt's linear-trend smoothing over per-interval rates: a forecaster small enough to trust.

WHY Holt and not something richer: an autoscaler needs the rate one pod start-up ahead
(about a minute), not tomorrow's. Over that horizon a flash sale looks like a ramp, and a
level plus a trend is the simplest model that extrapolates a ramp; it has two knobs, keeps
O(1) state and cannot blow up. The trend is damped (``phi`` per second) so that a burst of
noise does not project a ramp for the whole horizon, and only rising trends are projected
(``project_falls=False``): a forecast below the current level would let the autoscaler
shed pods that the scale-down stabilization window keeps anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class HoltForecaster:
    """Level and trend (per second) of a rate, updated with one observation per step.

    ``alpha``: weight of a new observation in the level; ``beta``: weight of the new
    slope in the trend; ``phi``: per-second damping of the trend when projected (1: none).
    """

    alpha: float = 0.3
    beta: float = 0.05
    phi: float = 0.97
    project_falls: bool = False
    level: float | None = None
    trend: float = 0.0
    observations: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.alpha <= 1 and 0 <= self.beta <= 1 and 0 < self.phi <= 1):
            raise ValueError("need 0 < alpha <= 1, 0 <= beta <= 1 and 0 < phi <= 1")

    def update(self, rate: float, dt: float = 1.0) -> None:
        """Fold in the rate observed over the last ``dt`` seconds."""
        if dt <= 0:
            raise ValueError("dt must be positive")
        self.observations += 1
        if self.level is None:
            self.level = rate
            return
        # Weights for an observation that covers dt seconds, so that sampling every 0.5 s
        # or every 2 s smooths over the same wall-clock span.
        a = 1 - (1 - self.alpha) ** dt
        b = 1 - (1 - self.beta) ** dt
        previous = self.level
        self.level = a * rate + (1 - a) * (self.level + self.trend * dt)
        self.trend = b * (self.level - previous) / dt + (1 - b) * self.trend

    def forecast(self, horizon_s: float) -> float:
        """The rate expected ``horizon_s`` seconds from now (never negative)."""
        if self.level is None:
            return 0.0
        if self.phi == 1:
            reach = horizon_s
        else:  # sum of phi^k for k = 1..h, continuous in h
            reach = self.phi * (1 - self.phi**horizon_s) / (1 - self.phi)
        trend = self.trend if self.project_falls else max(self.trend, 0.0)
        value = self.level + trend * reach
        return max(value, 0.0) if math.isfinite(value) else 0.0
