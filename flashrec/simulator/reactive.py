"""Live shoppers who react to the recommendations they are shown, and a mid-sale shift.

WHY reactive: an A/B test measures whether a list makes shoppers buy. The batch history's
shoppers follow a plan made before they see anything, so any model "converts" them alike;
these shoppers look at the list they are shown at each step and sometimes take an item
from it. How often depends on how well the list matches what they want right now:

- at each step the shopper considers the shown list with probability ``consider``;
- the list's relevance is ``R = sum of p(i) over the shown items / sum of the k largest
  p(i)`` (1.0 = the best list of that length for this shopper now), where ``p`` is the
  shopper's current item distribution (tastes, popularity, and the sale);
- they take an item from it with probability ``R``, choosing among the shown items in
  proportion to ``p``; otherwise they browse on their own (an item drawn from ``p``);
- the item taken then goes through the same funnel as the history's sessions (view ->
  click -> cart -> purchase, ``shoppers.Funnel``).

A model whose lists follow the shoppers' current tastes therefore converts more of them;
nothing else in the platform knows about this rule (it is the benchmark's ground truth).

The world is the history's (``world.build_world``: same items, shoppers and tastes), so a
model trained on the history fits the first part of the stream. ``shift`` is the flash
sale the model has never seen: ``n`` new items in a few categories are created and then
draw ``share`` of every new session's interest (more for shoppers who like their
categories). Sessions already open keep their tastes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from flashrec.events import CatalogEvent, StorefrontEvent
from flashrec.simulator.catalog import Catalog
from flashrec.simulator.config import SimulationConfig
from flashrec.simulator.shoppers import Funnel, Shopper, TasteModel, session_context
from flashrec.simulator.world import World


@dataclass(frozen=True)
class ReactiveConfig:
    concurrency: int = 200  # sessions open at once
    consider: float = 0.8  # chance a shopper looks at the shown list at a step
    k: int = 10  # items shown
    mean_steps: float = 6.0  # items a session looks at (geometric)
    max_steps: int = 30
    new_item_stock: int = 1_000_000  # new items never sell out during a run
    funnel: Funnel = field(default_factory=Funnel)


@dataclass(frozen=True)
class Shift:
    """The flash sale the day-1 model never saw."""

    n_items: int = 24
    n_categories: int = 3
    share: float = 0.6


@dataclass
class LiveShopper:
    session_id: str
    user_id: str | None
    device: str
    referrer: str
    probs: np.ndarray
    steps_left: int
    seen: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """How the read API names this shopper (``u:<user>`` or ``s:<session>``)."""
        return f"u:{self.user_id}" if self.user_id else f"s:{self.session_id}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def extend_catalog(
    catalog: Catalog, rng: np.random.Generator, n: int, categories: Sequence[int], stock: int
) -> Catalog:
    """``catalog`` plus ``n`` new items spread over ``categories``, each as popular as the
    catalog's most popular item (they are the sale's stars)."""
    start = catalog.size
    cats = np.array([categories[i % len(categories)] for i in range(n)], dtype=np.int64)
    brands = cats.copy()  # brand b belongs to category b % n_categories (build_catalog)
    overall = float(np.median(catalog.base_prices))
    typical = {
        int(c): float(np.median(catalog.base_prices[catalog.categories == c]))
        if np.any(catalog.categories == c)
        else overall
        for c in cats
    }
    prices = np.round([typical[int(c)] * rng.uniform(0.6, 1.4) for c in cats], 2)
    pop = np.concatenate([catalog.popularity, np.full(n, catalog.popularity.max())])
    all_prices = np.concatenate([catalog.base_prices, prices])
    return replace(
        catalog,
        item_ids=[*catalog.item_ids, *(f"item-{i:05d}" for i in range(start, start + n))],
        categories=np.concatenate([catalog.categories, cats]),
        brands=np.concatenate([catalog.brands, brands]),
        base_prices=all_prices,
        price_bands=np.searchsorted(
            np.quantile(all_prices, [1 / 3, 2 / 3]), all_prices, side="right"
        ),
        popularity=pop / pop.sum(),
        created_ms=np.concatenate([catalog.created_ms, np.zeros(n, dtype=np.int64)]),
        initial_stock=np.concatenate([catalog.initial_stock, np.full(n, stock)]),
    )


class ReactiveTraffic:
    """Open sessions advanced one step at a time by whoever drives the traffic.

    ``pick`` returns the shopper of the next step; ``step(shopper, shown)`` turns the
    list that shopper was just shown into its event lines (JSON). ``bootstrap`` is the
    catalog's ``item_created`` lines (the live stream describes its own items).
    """

    def __init__(
        self,
        config: SimulationConfig,
        world: World,
        reactive: ReactiveConfig | None = None,
        *,
        run_id: str = "0",
        now_fn: Callable[[], datetime] = _utcnow,
        seed_offset: int = 7,
    ) -> None:
        self.config = config
        self.reactive = reactive or ReactiveConfig()
        self.run_id, self.now_fn = run_id, now_fn
        self.rng = np.random.Generator(np.random.PCG64([config.seed, seed_offset]))
        self.catalog = world.catalog
        self.shoppers = world.shoppers
        self.taste = TasteModel(self.catalog)
        activity = np.array([s.activity for s in self.shoppers])
        self._activity = activity / activity.sum()
        self.index = {item: i for i, item in enumerate(self.catalog.item_ids)}
        self.new_items: np.ndarray = np.zeros(0, dtype=np.int64)
        self.shift_share = 0.0
        self._n_events = self._n_sessions = 0
        self.last_item = ""  # the item of the latest step
        self.active = [self._new_session() for _ in range(self.reactive.concurrency)]

    # -- the world --------------------------------------------------------------------

    def bootstrap(self) -> list[str]:
        """``item_created`` for every item (category, brand, price, stock)."""
        c = self.catalog
        return [self._created(i) for i in range(c.size)]

    def _created(self, i: int) -> str:
        c = self.catalog
        return CatalogEvent(
            event_type="item_created",
            **self._base(i),
            category=c.category_of(i),
            brand=c.brand_of(i),
            price=float(c.base_prices[i]),
            stock_level=int(c.initial_stock[i]),
        ).to_json()

    def shift(self, shift: Shift) -> tuple[list[str], list[str]]:
        """Create the sale's new items and turn new sessions towards them.

        Returns (the new items' ids, their ``item_created`` lines). The categories are
        drawn among those with the most shoppers, so the sale matters to many of them.
        """
        fans = np.bincount(
            [c for s in self.shoppers for c in s.categories],
            minlength=len(self.catalog.category_names),
        )
        cats = np.argsort(-fans, kind="stable")[: shift.n_categories].tolist()
        start = self.catalog.size
        self.catalog = extend_catalog(
            self.catalog, self.rng, shift.n_items, cats, self.reactive.new_item_stock
        )
        self.taste = TasteModel(self.catalog)
        self.index = {item: i for i, item in enumerate(self.catalog.item_ids)}
        self.new_items = np.arange(start, self.catalog.size)
        self.shift_share = shift.share
        return (
            [self.catalog.item_ids[i] for i in self.new_items],
            [self._created(int(i)) for i in self.new_items],
        )

    def category_of(self, item_id: str) -> str | None:
        i = self.index.get(item_id)
        return None if i is None else self.catalog.category_of(i)

    # -- sessions ---------------------------------------------------------------------

    def _probs(self, weights: np.ndarray) -> np.ndarray:
        base = weights / weights.sum()
        if not len(self.new_items) or self.shift_share <= 0:
            return base
        viral = np.zeros_like(weights)
        viral[self.new_items] = weights[self.new_items]
        viral = viral / viral.sum()
        return (1 - self.shift_share) * base + self.shift_share * viral

    def _new_session(self) -> LiveShopper:
        r = self.reactive
        shopper: Shopper | None = None
        if self.rng.random() < self.config.anonymous_share:
            cats = np.bincount(self.catalog.categories, weights=self.catalog.popularity)
            focus = int(self.rng.choice(len(cats), p=cats / cats.sum()))
            weights = self.taste.anonymous_weights(focus)
        else:
            shopper = self.shoppers[int(self.rng.choice(len(self.shoppers), p=self._activity))]
            weights = self.taste.shopper_weights(shopper)
        device, referrer = session_context(self.rng, shopper, in_sale=True)
        steps = min(int(self.rng.geometric(1.0 / r.mean_steps)), r.max_steps)
        self._n_sessions += 1
        return LiveShopper(
            session_id=f"rs-{self.run_id}-{self._n_sessions}",
            user_id=None if shopper is None else shopper.user_id,
            device=device,
            referrer=referrer,
            probs=self._probs(weights),
            steps_left=steps,
        )

    def pick(self) -> int:
        """Index (into ``active``) of the session that acts next."""
        return int(self.rng.integers(len(self.active)))

    def relevance(self, shopper: LiveShopper, shown: Sequence[str]) -> float:
        """How well ``shown`` matches what the shopper wants now (1 = the best list)."""
        idx = [self.index[i] for i in shown[: self.reactive.k] if i in self.index]
        if not idx:
            return 0.0
        k = self.reactive.k
        best = np.sum(np.partition(shopper.probs, -k)[-k:])
        return float(np.sum(shopper.probs[idx]) / best) if best > 0 else 0.0

    def step(self, slot: int, shown: Sequence[str] | None) -> tuple[list[str], bool]:
        """The event lines of one step of session ``active[slot]``, having been shown
        ``shown``; and whether the item came from the list."""
        r = self.reactive
        s = self.active[slot]
        if len(s.probs) < self.catalog.size:  # opened before the shift: no taste for new items
            s.probs = np.concatenate([s.probs, np.zeros(self.catalog.size - len(s.probs))])
        took = False
        item = None
        if shown and self.rng.random() < r.consider:
            rel = self.relevance(s, shown)
            if self.rng.random() < rel:
                idx = np.array([self.index[i] for i in shown[: r.k] if i in self.index])
                p = s.probs[idx]
                if p.sum() > 0:
                    item = int(idx[self.rng.choice(len(idx), p=p / p.sum())])
                    took = True
        if item is None:
            item = int(self.rng.choice(len(s.probs), p=s.probs))
        lines = self._funnel(s, item)
        self.last_item = self.catalog.item_ids[item]
        s.seen.append(self.last_item)
        s.steps_left -= 1
        if s.steps_left <= 0:
            self.active[slot] = self._new_session()
        return lines, took

    def _funnel(self, s: LiveShopper, item: int) -> list[str]:
        f = self.reactive.funnel
        kinds = ["view"]
        if self.rng.random() < f.click:
            kinds.append("click")
            if self.rng.random() < min(1.0, f.cart * f.sale_lift):
                kinds.append("add_to_cart")
                if self.rng.random() < min(1.0, f.purchase * f.sale_lift):
                    kinds.append("purchase")
        return [
            StorefrontEvent(
                event_type=kind,  # type: ignore[arg-type]
                **self._base(item),  # type: ignore[arg-type]
                session_id=s.session_id,
                user_id=s.user_id,
                device=s.device,  # type: ignore[arg-type]
                referrer=s.referrer,
                price=float(self.catalog.base_prices[item]),
                quantity=1,
            ).to_json()
            for kind in kinds
        ]

    def _base(self, item: int) -> dict[str, object]:
        self._n_events += 1
        return {
            "event_id": f"rx-{self.run_id}-{self._n_events}",
            "event_time": self.now_fn(),
            "item_id": self.catalog.item_ids[item],
        }
