"""Pareto fronts (quality up, cost or size down) and the "smallest within tolerance" rule.

WHY a rule on top of the front: the front lists every defensible trade-off, but a
pipeline must pick one without a person. "The smallest (cheapest) point whose quality is
within 1% of the best" buys memory or surge capacity for a loss smaller than the
validation noise, and never picks a point that is off the front.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    """One candidate model: its quality (higher is better) and cost/size (lower is better)."""

    quality: float
    cost: float
    label: str = ""


def pareto_front(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points, sorted by cost (ascending).

    A point is dominated when another is at least as good on both axes and strictly
    better on one. Exact duplicates both stay (neither strictly beats the other).
    """
    front: list[int] = []
    for i, p in enumerate(points):
        dominated = any(
            q.quality >= p.quality
            and q.cost <= p.cost
            and (q.quality > p.quality or q.cost < p.cost)
            for j, q in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i].cost, -points[i].quality))


def smallest_within(points: Sequence[Point], tolerance_pct: float = 1.0) -> tuple[int, float]:
    """(index, loss in % of the best quality) of the lowest-cost point whose quality is at
    least ``best * (1 - tolerance_pct / 100)``; ties on cost go to the higher quality."""
    if not points:
        raise ValueError("no points to choose from")
    best = max(p.quality for p in points)
    floor = best - abs(best) * tolerance_pct / 100.0
    eligible = [i for i, p in enumerate(points) if p.quality >= floor]
    chosen = min(eligible, key=lambda i: (points[i].cost, -points[i].quality))
    loss = (best - points[chosen].quality) / abs(best) * 100.0 if best else 0.0
    return chosen, loss
