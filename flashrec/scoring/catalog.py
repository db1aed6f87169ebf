"""Item attributes and popularity: what content-based lists and segment lists are built from.

WHY separate from the model: the scorer needs the catalog even when the model service is
down (content tier, segment lists), and it must not import training code to get it. The
catalog is a small JSON document saved inside every model artifact and served by the model
service, so the scorer and the model always agree on which items exist.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PRICE_BANDS = ("low", "mid", "high", "premium")
#: Weights of the attribute matches of a content-based candidate (category matters most).
MATCH_WEIGHTS = {"category": 3.0, "brand": 2.0, "price_band": 1.0}


@dataclass(frozen=True)
class ItemInfo:
    """Attributes of one item (strings may be empty when the lake did not know them)."""

    item_id: str
    category: str = ""
    brand: str = ""
    price_band: str = ""
    popularity: float = 0.0


@dataclass
class Catalog:
    """Items with attributes, plus popularity per segment (device, referrer) from history."""

    items: dict[str, ItemInfo] = field(default_factory=dict)
    segments: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    _by_attr: dict[tuple[str, str], list[str]] = field(default_factory=dict, repr=False)
    _popular: list[str] = field(default_factory=list, repr=False)
    max_popularity: float = field(default=1.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._index()

    def _index(self) -> None:
        """Per (attribute, value): items by popularity, most popular first (built once)."""
        groups: dict[tuple[str, str], list[ItemInfo]] = defaultdict(list)
        for info in self.items.values():
            for attr in MATCH_WEIGHTS:
                value = getattr(info, attr)
                if value:
                    groups[attr, value].append(info)
        self._by_attr = {k: [i.item_id for i in _by_pop(v)] for k, v in groups.items()}
        self._popular = [i.item_id for i in _by_pop(self.items.values())]
        top = max((i.popularity for i in self.items.values()), default=0.0)
        self.max_popularity = top or 1.0

    def __len__(self) -> int:
        return len(self.items)

    def popular(self, k: int) -> list[str]:
        return self._popular[:k]

    def with_attr(self, attr: str, value: str) -> list[str]:
        """Items sharing ``attr == value``, most popular first."""
        return self._by_attr.get((attr, value), [])

    def attributes(self) -> dict[str, str]:
        """item_id -> category (the attribute the model's cold-item embeddings use)."""
        return {i: info.category for i, info in self.items.items() if info.category}

    # -- persistence -------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "items": [asdict(i) for i in self.items.values()],
            "segments": self.segments,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Catalog:
        items = {d["item_id"]: ItemInfo(**d) for d in doc.get("items", [])}
        return cls(items=items, segments={k: dict(v) for k, v in doc.get("segments", {}).items()})

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> Catalog:
        return cls.from_json(json.loads(path.read_text()))


def _by_pop(infos: Iterable[ItemInfo]) -> list[ItemInfo]:
    return sorted(infos, key=lambda i: (-i.popularity, i.item_id))


def price_bands(prices: Mapping[str, float]) -> dict[str, str]:
    """Quartile band of each item's price among all priced items (relative, not absolute:
    a "premium" phone and a "premium" sock are both the dearest quarter of the catalog)."""
    ordered = sorted(prices.values())
    if not ordered:
        return {}
    cuts = [ordered[min(len(ordered) - 1, math.floor(q * len(ordered)))] for q in (0.25, 0.5, 0.75)]
    out = {}
    for item, price in prices.items():
        band = sum(price >= c for c in cuts)
        out[item] = PRICE_BANDS[band]
    return out


def catalog_from_interactions(rows: Iterable[Mapping[str, Any]]) -> Catalog:
    """Catalog from ``gold/interactions`` rows (item_id, category, brand, price, weight,
    device, referrer): attributes from the latest non-empty values, popularity = sum of
    action weights, overall and per device / referrer."""
    attrs: dict[str, dict[str, str]] = defaultdict(dict)
    prices: dict[str, float] = {}
    pop: dict[str, float] = defaultdict(float)
    seg: dict[str, dict[str, dict[str, float]]] = {"device": {}, "referrer": {}}
    for row in rows:
        item = str(row["item_id"])
        weight = float(row.get("weight") or 1.0)
        pop[item] += weight
        for attr in ("category", "brand"):
            if row.get(attr):
                attrs[item][attr] = str(row[attr])
        if row.get("price") is not None:
            prices[item] = float(row["price"])
        for kind in ("device", "referrer"):
            value = row.get(kind)
            if value:
                bucket = seg[kind].setdefault(str(value), {})
                bucket[item] = bucket.get(item, 0.0) + weight
    bands = price_bands(prices)
    items = {
        item: ItemInfo(
            item_id=item,
            category=attrs[item].get("category", ""),
            brand=attrs[item].get("brand", ""),
            price_band=bands.get(item, ""),
            popularity=round(p, 6),
        )
        for item, p in pop.items()
    }
    return Catalog(items=items, segments=seg)


def content_list(
    catalog: Catalog,
    recent_items: Sequence[str],
    k: int,
    *,
    per_attr: int = 200,
    decay: float = 0.8,
    exclude: Iterable[str] = (),
) -> list[tuple[str, float]]:
    """Content-based top ``k`` for a shopper who viewed ``recent_items`` (most recent first).

    Candidates share the category, brand or price band of a viewed item; each match adds
    its ``MATCH_WEIGHTS`` weight, discounted by how long ago the item was viewed. Ties (and
    the order within one match level) go to the more popular item, so a shopper with one
    view sees the category's bestsellers first. Viewed and ``exclude``d items are left
    out; the list is padded with global popularity when the attributes find too few.
    """
    seen = set(recent_items) | set(exclude)
    scores: dict[str, float] = defaultdict(float)
    for age, item in enumerate(recent_items):
        info = catalog.items.get(item)
        if info is None:
            continue
        w = decay**age
        for attr, attr_weight in MATCH_WEIGHTS.items():
            value = getattr(info, attr)
            if not value:
                continue
            for cand in catalog.with_attr(attr, value)[:per_attr]:
                if cand not in seen:
                    scores[cand] += w * attr_weight
    max_pop = catalog.max_popularity  # once per catalog: this runs for every shopper

    def final(item: str) -> float:
        # popularity breaks ties only: it adds less than the smallest possible match step
        return round(scores[item] + 0.01 * catalog.items[item].popularity / max_pop, 6)

    finals = {item: final(item) for item in scores}
    ranked = sorted(finals, key=lambda i: (-finals[i], i))[:k]
    out = [(i, finals[i]) for i in ranked]
    if len(out) < k:
        taken = set(ranked) | seen
        for item in catalog.popular(k + len(taken)):
            if item not in taken:
                out.append((item, round(0.01 * catalog.items[item].popularity / max_pop, 6)))
                if len(out) >= k:
                    break
    return out
