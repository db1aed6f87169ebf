"""The soak's arithmetic: samples in, slopes per million events out (pure, unit-tested)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Sample:
    t: float  # seconds since the traffic started
    events: int  # events accepted into the log so far
    rss_mb: dict[str, float] = field(default_factory=dict)  # per component (process tree)
    redis_mb: float = 0.0
    checkpoint_mb: float = 0.0
    flink_lag: int = 0
    scorer_lag: int = 0

    @property
    def total_rss_mb(self) -> float:
        return sum(self.rss_mb.values())


def slope_per_million(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` (MB) against ``xs`` (events), in MB per million events."""
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return float("nan")
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return cov / var * 1e6


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
    values = [get(s) for s in kept] or [float("nan")]
    return min(values), max(values)
