"""Replay A/B: shoppers of a traffic window are split by the read API's own assignment,
each arm's model recommends from the shopper's session so far, and a shopper "converts"
when the item they actually took next is in the list shown.

WHY: it gives per-variant conversion on real (or simulated) behaviour before - and
alongside - live traffic, feeding the same counters the attribution job fills in
production, so the promotion logic is exercised end to end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import redis

from flashrec.serving import keys
from flashrec.serving.policy import assign_variant

Recommender = Callable[[list[list[str]], int], list[list[str]]]


@dataclass(frozen=True)
class ArmCount:
    sessions: int
    conversions: int


def replay(
    sessions: Mapping[str, Sequence[str]],
    arms: Mapping[str, Recommender],
    shares: Mapping[str, float],
    k: int = 20,
) -> dict[str, ArmCount]:
    """Per variant: shoppers served and shoppers whose next item was in the list."""
    grouped: dict[str, list[tuple[str, list[str], str]]] = {v: [] for v in arms}
    for shopper, items in sessions.items():
        if len(items) < 2:
            continue
        cut = max(1, len(items) // 2)
        prefix = list(reversed(items[:cut]))
        grouped[assign_variant(shopper, shares)].append((shopper, prefix, items[cut]))
    out = {}
    for variant, cases in grouped.items():
        if not cases:
            out[variant] = ArmCount(0, 0)
            continue
        lists = arms[variant]([c[1] for c in cases], k)
        hits = sum(target in top for (_, _, target), top in zip(cases, lists, strict=True))
        out[variant] = ArmCount(len(cases), hits)
    return out


def record(client: redis.Redis, counts: Mapping[str, ArmCount], prefix: str = "replay") -> None:
    """Add the counts to the same per-variant counters the attribution job keeps."""
    pipe = client.pipeline(transaction=False)
    for variant, count in counts.items():
        pipe.hincrby(keys.ab_stats(variant), "impressions", count.sessions)
        pipe.hincrby(keys.ab_stats(variant), "purchases", count.conversions)
        shoppers = [f"{prefix}:{variant}:{i}" for i in range(count.sessions)]
        if shoppers:
            pipe.pfadd(keys.ab_shoppers(variant), *shoppers)
        if count.conversions:
            pipe.pfadd(keys.ab_converters(variant), *shoppers[: count.conversions])
    pipe.execute()
