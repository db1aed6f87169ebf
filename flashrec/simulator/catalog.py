"""The simulated shop's catalog: what is sold, at which price, and how much is left.

Stock is the part of a flash sale that goes wrong in production (oversold items,
restocks racing purchases), so the ledger here is the ground truth that tests replay
the emitted ``stock_change`` events against.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from flashrec.events import CatalogEvent, StorefrontEvent

CATEGORY_NAMES = (
    "electronics", "fashion", "home", "beauty", "sports", "toys", "books", "grocery",
    "garden", "auto", "jewelry", "pets", "health", "office", "music", "baby",
)  # fmt: skip


@dataclass(frozen=True)
class Catalog:
    """Items as parallel arrays (index = item number) so sampling stays vectorised."""

    item_ids: list[str]
    category_names: list[str]
    brand_names: list[str]
    categories: np.ndarray  # category index per item
    brands: np.ndarray  # brand index per item
    base_prices: np.ndarray
    price_bands: np.ndarray  # 0 cheap, 1 mid, 2 premium (tercile of base price)
    popularity: np.ndarray  # Zipf-like weights, sum 1
    created_ms: np.ndarray  # ms after the period start; 0 for launch items
    initial_stock: np.ndarray

    @property
    def size(self) -> int:
        return len(self.item_ids)

    def category_of(self, item: int) -> str:
        return self.category_names[int(self.categories[item])]

    def brand_of(self, item: int) -> str:
        return self.brand_names[int(self.brands[item])]

    def available(self, at_ms: int) -> np.ndarray:
        """Mask of items already created at ``at_ms`` (shoppers cannot see future items)."""
        return self.created_ms <= at_ms


def _category_names(n: int) -> list[str]:
    return [CATEGORY_NAMES[i] if i < len(CATEGORY_NAMES) else f"category-{i:02d}" for i in range(n)]


def build_catalog(
    rng: np.random.Generator,
    *,
    n_items: int,
    n_categories: int,
    n_brands: int,
    zipf_exponent: float,
    new_item_share: float,
    new_items_window_ms: tuple[int, int],
    stock_range: tuple[int, int],
) -> Catalog:
    """Draw a catalog whose popularity is heavy-tailed, as real storefront traffic is.

    Brands belong to one category each, so brand taste implies category taste. The last
    ``new_item_share`` of items launch mid-period, inside ``new_items_window_ms``.
    """
    category_weight = 1.0 / np.arange(1, n_categories + 1) ** 0.7
    categories = rng.choice(n_categories, size=n_items, p=category_weight / category_weight.sum())
    brand_of_category = [np.arange(c, n_brands, n_categories) for c in range(n_categories)]
    brands = np.array([rng.choice(brand_of_category[c]) for c in categories], dtype=np.int64)
    price_scale = np.exp(rng.normal(3.4, 0.8, size=n_categories))
    prices = price_scale[categories] * np.exp(rng.normal(0.0, 0.45, size=n_items))
    prices = np.round(np.clip(prices, 1.0, 5000.0), 2)
    ranks = rng.permutation(n_items)
    popularity = 1.0 / (ranks + 1.0) ** zipf_exponent
    created = np.zeros(n_items, dtype=np.int64)
    n_new = int(round(n_items * new_item_share))
    if n_new:
        low, high = new_items_window_ms
        created[n_items - n_new :] = np.sort(rng.integers(low, high, size=n_new))
    stock = rng.integers(stock_range[0], stock_range[1] + 1, size=n_items)
    return Catalog(
        item_ids=[f"item-{i:05d}" for i in range(n_items)],
        category_names=_category_names(n_categories),
        brand_names=[f"brand-{b:03d}" for b in range(n_brands)],
        categories=categories,
        brands=brands,
        base_prices=prices,
        price_bands=np.searchsorted(np.quantile(prices, [1 / 3, 2 / 3]), prices, side="right"),
        popularity=popularity / popularity.sum(),
        created_ms=created,
        initial_stock=stock,
    )


@dataclass
class StockLedger:
    """Absolute stock per item: purchases never take it below zero; a sell-out books a restock.

    ``trajectory`` keeps every level an item went through, ``(ms, level)``, as ground truth.
    """

    rng: np.random.Generator
    levels: list[int]
    restock_to: list[int]
    restock_delay_ms: tuple[int, int]
    trajectory: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    _pending: list[tuple[int, int]] = field(default_factory=list)
    _booked: set[int] = field(default_factory=set)

    def open(self, item: int, at_ms: int) -> int:
        """Record the item's initial stock when it is created."""
        self.trajectory[item] = [(at_ms, self.levels[item])]
        return self.levels[item]

    def buy(self, item: int, quantity: int, at_ms: int) -> int:
        """Sell up to ``quantity``; returns how many were sold (0: sold out, no purchase)."""
        sold = min(quantity, self.levels[item])
        if sold == 0:
            return 0
        self.levels[item] -= sold
        self.trajectory[item].append((at_ms, self.levels[item]))
        if self.levels[item] == 0 and item not in self._booked:
            low, high = self.restock_delay_ms
            heapq.heappush(self._pending, (at_ms + int(self.rng.integers(low, high + 1)), item))
            self._booked.add(item)
        return sold

    def restocks_due(self, until_ms: int) -> list[tuple[int, int, int]]:
        """Apply restocks due at or before ``until_ms``: ``(ms, item, new_level)`` in time order."""
        done: list[tuple[int, int, int]] = []
        while self._pending and self._pending[0][0] <= until_ms:
            at_ms, item = heapq.heappop(self._pending)
            self._booked.discard(item)
            self.levels[item] = self.restock_to[item]  # it sat at 0 since the sell-out
            self.trajectory[item].append((at_ms, self.levels[item]))
            done.append((at_ms, item, self.levels[item]))
        return done


def check_stock(events: Iterable[StorefrontEvent | CatalogEvent]) -> list[str]:
    """Replay item_created / purchase / stock_change in the given order; list every mismatch.

    A stock_change right after a purchase must equal the level minus the quantity; any
    other stock_change is a restock and must raise the level. Empty list = consistent.
    """
    level: dict[str, int] = {}
    awaiting: dict[str, int] = {}  # item -> level expected in the next stock_change
    problems: list[str] = []
    for ev in events:
        item = ev.item_id
        if ev.event_type == "item_created":
            level[item] = ev.stock_level  # type: ignore[union-attr]
        elif ev.event_type == "purchase":
            if item not in level:
                problems.append(f"{ev.event_id}: purchase of {item} before item_created")
                continue
            level[item] -= ev.quantity  # type: ignore[union-attr]
            if level[item] < 0:
                problems.append(f"{ev.event_id}: {item} oversold to {level[item]}")
            awaiting[item] = level[item]
        elif ev.event_type == "stock_change":
            new = ev.stock_level  # type: ignore[union-attr]
            if item in awaiting:
                if new != awaiting.pop(item):
                    problems.append(f"{ev.event_id}: {item} stock {new} != replayed {level[item]}")
            elif new <= level.get(item, 0):
                problems.append(f"{ev.event_id}: restock of {item} did not raise stock")
            level[item] = new
    return problems
