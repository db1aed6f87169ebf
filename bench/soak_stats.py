"""The soak's arithmetic: samples in, slopes per million events out (pure, unit-tested)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Sample:
    t: float  # seconds since the traffic started
    events: int  # events accepted into the log so far
    rss_mb: dict[str, float] = field(default_factory=dict)  # per component (process tree)
    redis_mb: float = 0.0
    checkpoint_mb: float = 0.0  # NaN: no reading (the checkpoint was replaced mid-walk)
    flink_lag: int = 0
    scorer_lag: int = 0

    @property
    def total_rss_mb(self) -> float:
        return sum(self.rss_mb.values())


def slope_per_million(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` (MB) against ``xs`` (events), in MB per million events;
    points without a reading (NaN) are left out."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    known = ~np.isnan(y)
    x, y = x[known], y[known]
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan")
    dx = x - x.mean()
    return float(np.dot(dx, y - y.mean()) / np.dot(dx, dx) * 1e6)


def after_warmup(samples: Sequence[Sample], warmup_events: int) -> list[Sample]:
    return [s for s in samples if s.events >= warmup_events]


def slopes(samples: Sequence[Sample], warmup_events: int) -> dict[str, float]:
    """Slope of every series after warm-up: ``rss`` (all processes), ``rss:<name>``,
    ``redis``, ``checkpoint``."""
    kept = after_warmup(samples, warmup_events)
    xs = [float(s.events) for s in kept]
    out = {
        "rss": slope_per_million(xs, [s.total_rss_mb for s in kept]),
        "redis": slope_per_million(xs, [s.redis_mb for s in kept]),
        "checkpoint": slope_per_million(xs, [s.checkpoint_mb for s in kept]),
    }
    names = sorted({n for s in kept for n in s.rss_mb})
    for name in names:
        out[f"rss:{name}"] = slope_per_million(xs, [s.rss_mb.get(name, 0.0) for s in kept])
    return out


def level(samples: Sequence[Sample], warmup_events: int, key: str) -> tuple[float, float]:
    """(min, max) of a series after warm-up (``rss``, ``redis``, ``checkpoint``)."""
    kept = after_warmup(samples, warmup_events)
    get = {
        "rss": lambda s: s.total_rss_mb,
        "redis": lambda s: s.redis_mb,
        "checkpoint": lambda s: s.checkpoint_mb,
    }[key]
    values = [v for v in (get(s) for s in kept) if not math.isnan(v)] or [float("nan")]
    return min(values), max(values)
