"""A tiny learnable catalog world for tests and smoke runs (fits in a few seconds).

WHY: scorer tests need a real fitted model, but the simulator + lake would take minutes.
Items ``i00..`` fall into categories and brands; inside a session a shopper mostly moves
to the next item of the same category, so a model has something to learn.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

DEVICES = ("mobile", "desktop")
REFERRERS = ("direct", "search", "social")


def item_id(i: int) -> str:
    return f"i{i:03d}"


def interactions(
    n_sessions: int = 400, n_items: int = 60, n_categories: int = 6, seed: int = 7
) -> list[dict[str, Any]]:
    """``gold/interactions``-shaped rows (session_id, event_time, event_seq, item_id, ...)."""
    rng = random.Random(seed)
    per_cat = n_items // n_categories
    t0 = datetime(2026, 11, 20, tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    for s in range(n_sessions):
        cur = rng.randrange(n_items)
        device, referrer = rng.choice(DEVICES), rng.choice(REFERRERS)
        for seq in range(rng.randint(2, 7)):
            rows.append(
                {
                    "session_id": f"s{s:05d}",
                    "event_time": t0 + timedelta(seconds=s * 60 + seq),
                    "event_seq": seq,
                    "item_id": item_id(cur),
                    "event_type": "view",
                    "weight": 1.0 + (cur % 3 == 0),
                    "price": 10.0 + 7.0 * (cur % per_cat),
                    "category": f"c{cur // per_cat}",
                    "brand": f"b{cur % 5}",
                    "device": device,
                    "referrer": referrer,
                }
            )
            if rng.random() < 0.8:
                base = (cur // per_cat) * per_cat
                cur = base + (cur - base + 1) % per_cat
            else:
                cur = rng.choice((0, 1, 2))
    return rows
