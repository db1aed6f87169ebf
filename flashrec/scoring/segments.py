"""Popular-by-segment lists: what anonymous and brand-new shoppers see, and the last resort.

WHY refreshed continuously by the scorer: in a flash sale popularity moves by the minute
and items sell out; a list computed once at training time would push sold-out or cooling
items. History (the catalog's popularity per category, device and referrer) gives the
base; live item features (demand windows, ``item_trending_score``) re-rank it when the
online store has them. Sold-out items are left out at write time (the read API filters
again at read time, so a list is never wrong for long).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis

from flashrec.scoring.catalog import Catalog
from flashrec.scoring.tiers import FeatureReader
from flashrec.serving import cache, keys

ITEM_VIEW = "item_activity"
READ_CHUNK = 500


def live_item_features(
    read: FeatureReader | None, item_ids: Sequence[str]
) -> dict[str, Mapping[str, Any]]:
    """Online item features by id (batched reads); empty when there is no reader."""
    if read is None or not item_ids:
        return {}
    out: dict[str, Mapping[str, Any]] = {}
    for start in range(0, len(item_ids), READ_CHUNK):
        chunk = list(item_ids[start : start + READ_CHUNK])
        for item, row in zip(chunk, read(ITEM_VIEW, chunk), strict=True):
            if row:
                out[item] = row
    return out


def _demand(row: Mapping[str, Any] | None) -> float:
    if not row:
        return 0.0
    return float(
        (row.get("item_views_1h") or 0)
        + 2 * (row.get("item_carts_1h") or 0)
        + 4 * (row.get("item_purchases_1h") or 0)
    )


def segment_lists(
    catalog: Catalog,
    live: Mapping[str, Mapping[str, Any]],
    sold_out: set[str],
    k: int,
) -> dict[str, list[tuple[str, float]]]:
    """Every segment list by Redis key: popular, trending, per category/device/referrer."""
    max_pop = max((i.popularity for i in catalog.items.values()), default=0.0) or 1.0
    demand = {i: _demand(live.get(i)) for i in catalog.items}
    max_dem = max(demand.values(), default=0.0) or 1.0

    def score(item: str) -> float:
        # history and the last hour weigh the same: a surge lifts an item within minutes
        info = catalog.items[item]
        return round(info.popularity / max_pop + demand[item] / max_dem, 6)

    def top(items: Sequence[str], key: Any = score) -> list[tuple[str, float]]:
        ranked = sorted((i for i in items if i not in sold_out), key=lambda i: (-key(i), i))
        return [(i, key(i)) for i in ranked[:k]]

    out: dict[str, list[tuple[str, float]]] = {keys.POPULAR: top(list(catalog.items))}
    trending = {
        i: float(row.get("item_trending_score") or 0.0)
        for i, row in live.items()
        if i in catalog.items
    }
    if any(v > 0 for v in trending.values()):
        out[keys.TRENDING] = top([i for i, v in trending.items() if v > 0], trending.get)
    else:  # no live signal yet: better the popular list than a missing key
        out[keys.TRENDING] = out[keys.POPULAR]
    categories = {info.category for info in catalog.items.values() if info.category}
    for cat in sorted(categories):
        out[keys.segment("category", cat)] = top(catalog.with_attr("category", cat))
    for kind in ("device", "referrer"):
        for value, pops in sorted(catalog.segments.get(kind, {}).items()):
            seg_max = max(pops.values(), default=0.0) or 1.0

            def seg_score(item: str, pops: Mapping[str, float] = pops, m: float = seg_max) -> float:
                return round(pops.get(item, 0.0) / m + demand.get(item, 0.0) / max_dem, 6)

            out[keys.segment(kind, value)] = top([i for i in pops if i in catalog.items], seg_score)
    return {key: lst for key, lst in out.items() if lst}


def refresh_segments(
    client: redis.Redis,
    catalog: Catalog,
    read_items: FeatureReader | None = None,
    *,
    k: int = 100,
    model_version: str = "segment",
) -> int:
    """Recompute and write every segment list in one pipeline; returns lists written."""
    if not len(catalog):
        return 0
    live = live_item_features(read_items, list(catalog.items))
    sold_out = cache.read_sold_out(client)
    lists = segment_lists(catalog, live, sold_out, k)
    now = cache.now_ms()
    pipe = client.pipeline(transaction=False)
    for key, ranked in lists.items():
        cache.write_segment_list(
            pipe,  # type: ignore[arg-type]  # a pipeline queues the same SET
            key,
            [i for i, _ in ranked],
            [s for _, s in ranked],
            model_version=model_version,
            computed_at=now,
        )
    pipe.execute()
    return len(lists)
