"""The benchmarks' statistics and Prometheus reading, in one place.

- ``percentile``: of raw samples, linear between order statistics (numpy's default), with
  ``None`` for a probe never seen, counted as slower than any seen (so a percentile that
  falls on one is ``inf``, never silently dropped);
- Prometheus expositions are read with ``prometheus_client``'s own parser: samples by
  name, a histogram's buckets, and the quantile of what a histogram observed between two
  scrapes (interpolated inside a bucket, as PromQL's ``histogram_quantile`` does).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from prometheus_client.parser import text_string_to_metric_families


def percentile(values: Iterable[float | None], q: float) -> float:
    """``q``-th percentile (0-100) of raw samples; ``None`` = never seen (inf); nan if empty."""
    if isinstance(values, np.ndarray):
        xs = np.sort(values.astype(float, copy=False))
    else:
        xs = np.sort(np.array([math.inf if v is None else float(v) for v in values], dtype=float))
    if not len(xs):
        return math.nan
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    frac = pos - lo
    if frac == 0 or lo + 1 >= len(xs):
        return float(xs[lo])
    a, b = float(xs[lo]), float(xs[lo + 1])
    return math.inf if math.isinf(b) else a + (b - a) * frac


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called ``name`` in a Prometheus exposition."""
    return [
        ({k: v for k, v in labels.items() if k != "__name__"}, value)
        for labels, value in all_samples(text)
        if labels["__name__"] == name
    ]


def all_samples(text: str) -> list[tuple[dict[str, str], float]]:
    """(labels with ``__name__``, value) of every sample of an exposition."""
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:  # a truncated scrape: no samples rather than a crash mid-run
        return []
    return [({**s.labels, "__name__": s.name}, float(s.value)) for f in families for s in f.samples]


def histogram_buckets(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts ``{le: count}`` of histogram ``name`` (labels summed)."""
    out: dict[float, float] = {}
    for labels, value in samples(text, f"{name}_bucket"):
        le = float(labels["le"])
        out[le] = out.get(le, 0.0) + value
    return out


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Quantile (0-1, in ms) of the observations between two scrapes of one histogram."""
    les = sorted(after)
    counts = [after[le] - before.get(le, 0.0) for le in les]
    if not counts or counts[-1] <= 0:
        return math.nan
    target, prev_le, prev_c = q * counts[-1], 0.0, 0.0
    for le, c in zip(les, counts, strict=True):
        if c >= target:
            if math.isinf(le):
                return prev_le * 1000
            return (prev_le + (le - prev_le) * (target - prev_c) / max(c - prev_c, 1e-9)) * 1000
        prev_le, prev_c = le, c
    return math.nan
