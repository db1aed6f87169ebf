"""A deterministic flash-sale history: catalog, shoppers, sessions, the surge, stock.

Sessions are planned first (each from its start time), then replayed in event-time
order through the stock ledger, because purchases of different sessions interleave and
only the time-ordered replay knows whether an item is still in stock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from flashrec.events import CatalogEvent, StorefrontEvent
from flashrec.simulator.catalog import Catalog, StockLedger
from flashrec.simulator.config import DAY_MS, HOUR_MS, SimulationConfig
from flashrec.simulator.faults import LandingDay, assemble_landing
from flashrec.simulator.shoppers import (
    SaleMix,
    Shopper,
    TasteModel,
    plan_session,
    session_context,
)
from flashrec.simulator.world import build_world

log = logging.getLogger("flashrec.simulator")

#: Relative session starts per UTC hour: quiet nights, evening peak.
HOURLY_PROFILE = np.array(
    [0.5, 0.35, 0.25, 0.2, 0.2, 0.3, 0.5, 0.8, 1.0, 1.1, 1.1, 1.1,
     1.2, 1.2, 1.1, 1.1, 1.1, 1.2, 1.4, 1.6, 1.7, 1.6, 1.3, 0.9]
)  # fmt: skip

Event = StorefrontEvent | CatalogEvent
# A planned step: (ms, priority, seq, event_type, item, quantity, session, price).
# Catalog steps (priority 0) go before storefront steps of the same millisecond.
_Step = tuple[int, int, int, str, int, int, int, float]


@dataclass(frozen=True)
class SaleInfo:
    """The flash sale's window, discounted items (with sale prices) and viral items."""

    start: datetime
    end: datetime
    sale_prices: dict[str, float]
    viral_items: tuple[str, ...]


@dataclass(frozen=True)
class SimulationResult:
    """Valid events in event-time order, the landing files, and the ground truth."""

    config: SimulationConfig
    events: list[Event]
    lines: list[str]  # events[i].to_json()
    landing: list[LandingDay]
    catalog: Catalog
    shoppers: list[Shopper]
    sale: SaleInfo
    stock_trajectory: dict[str, list[tuple[datetime, int]]]
    refused_purchases: int  # purchases not emitted because the item was sold out

    def landing_lines(self) -> Iterator[tuple[date, str]]:
        """Every payload line with the landing day whose file it belongs to."""
        for day in self.landing:
            for line in day.lines:
                yield day.day, line


@dataclass
class _Emitter:
    """Turns planned steps into events with deterministic ids ``sim-<seed>-<n>``."""

    config: SimulationConfig
    catalog: Catalog
    sessions: list[tuple[str, str | None, str, str]]
    events: list[Event]

    def __post_init__(self) -> None:
        self._start = self.config.start  # hot path: computed once, not per event

    def _base(self, at_ms: int, item: int) -> dict[str, object]:
        return {
            "event_id": f"sim-{self.config.seed}-{len(self.events)}",
            "event_time": self._start + timedelta(milliseconds=at_ms),
            "item_id": self.catalog.item_ids[item],
        }

    def catalog_event(self, at_ms: int, event_type: str, item: int, **fields: object) -> None:
        self.events.append(
            CatalogEvent(event_type=event_type, **self._base(at_ms, item), **fields)  # type: ignore[arg-type]
        )

    def storefront(
        self, at_ms: int, event_type: str, item: int, session: int, **fields: object
    ) -> None:
        session_id, user_id, device, referrer = self.sessions[session]
        self.events.append(
            StorefrontEvent(
                event_type=event_type,  # type: ignore[arg-type]
                **self._base(at_ms, item),  # type: ignore[arg-type]
                session_id=session_id,
                user_id=user_id,
                device=device,  # type: ignore[arg-type]
                referrer=referrer,
                **fields,  # type: ignore[arg-type]
            )
        )


def _catalog_steps(
    catalog: Catalog, sale: SaleMix, sale_prices: np.ndarray, window: tuple[int, int]
) -> list[_Step]:
    steps: list[_Step] = [
        (int(catalog.created_ms[i]), 0, i, "item_created", i, 0, -1, 0.0)
        for i in range(catalog.size)
    ]
    for j, item in enumerate(sale.sale_items.tolist()):
        steps.append(
            (window[0], 0, catalog.size + j, "price_change", item, 0, -1, sale_prices[item])
        )
        steps.append((window[1], 0, catalog.size + j, "price_change", item, 0, -1, -1.0))
    return steps


def _session_starts(rng: np.random.Generator, config: SimulationConfig) -> np.ndarray:
    """Baseline sessions follow the daily profile; the surge adds (factor - 1) x mean rate."""
    profile = HOURLY_PROFILE / HOURLY_PROFILE.sum()
    n = config.sessions_per_day
    parts = []
    for d in range(config.days):
        hours = rng.choice(24, size=n, p=profile)
        parts.append(d * DAY_MS + hours * HOUR_MS + rng.integers(0, HOUR_MS, size=n))
    lo, hi = config.surge_window_ms
    n_surge = round((config.surge_factor - 1) * n / 24 * config.surge_hours)
    parts.append(rng.integers(lo, hi, size=n_surge))
    return np.sort(np.concatenate(parts)).astype(np.int64)


def _plan_sessions(
    rng: np.random.Generator,
    config: SimulationConfig,
    catalog: Catalog,
    shoppers: list[Shopper],
    sale: SaleMix,
) -> tuple[list[_Step], list[tuple[str, str | None, str, str]]]:
    starts = _session_starts(rng, config)
    n = len(starts)
    activity = np.array([s.activity for s in shoppers])
    who = rng.choice(len(shoppers), size=n, p=activity / activity.sum())
    anonymous = rng.random(n) < config.anonymous_share
    cat_traffic = np.bincount(catalog.categories, weights=catalog.popularity)
    focus = rng.choice(len(cat_traffic), size=n, p=cat_traffic / cat_traffic.sum())
    taste = TasteModel(catalog)
    lo, hi = config.surge_window_ms
    steps: list[_Step] = []
    meta: list[tuple[str, str | None, str, str]] = []
    for k, start in enumerate(starts.tolist()):
        shopper = None if anonymous[k] else shoppers[who[k]]
        weights = (
            taste.anonymous_weights(int(focus[k]))
            if shopper is None
            else taste.shopper_weights(shopper)
        )
        in_sale = lo <= start < hi
        probs = taste.session_probs(weights, catalog.available(start), sale if in_sale else None)
        device, referrer = session_context(rng, shopper, in_sale=in_sale)
        user_id = None if shopper is None else shopper.user_id
        meta.append((f"s-{config.seed}-{k}", user_id, device, referrer))
        for a in plan_session(rng, probs, config.funnel, in_sale=in_sale):
            at = start + a.offset_ms
            if at >= config.period_ms:
                break
            steps.append((at, 1, len(steps), a.event_type, a.item, a.quantity, k, 0.0))
    return steps, meta


def _replay(
    steps: list[_Step],
    emit: _Emitter,
    ledger: StockLedger,
    prices: tuple[np.ndarray, np.ndarray],
    config: SimulationConfig,
) -> int:
    """Emit events in time order, selling from the ledger; returns refused purchases."""
    base, on_sale = prices
    lo, hi = config.surge_window_ms
    refused = 0
    day_end, day_start_count = DAY_MS, 0

    def restock(until_ms: int) -> None:
        for at, item, level in ledger.restocks_due(until_ms):
            emit.catalog_event(at, "stock_change", item, stock_level=level)

    for at, _, _, kind, item, quantity, session, price in sorted(steps):
        restock(at)
        while at >= day_end:
            _log_day(config, day_end, len(emit.events) - day_start_count)
            day_end, day_start_count = day_end + DAY_MS, len(emit.events)
        if kind == "item_created":
            c = emit.catalog
            emit.catalog_event(
                at, kind, item, category=c.category_of(item), brand=c.brand_of(item),
                price=float(base[item]), stock_level=ledger.open(item, at),
            )  # fmt: skip
            continue
        if kind == "price_change":
            emit.catalog_event(at, kind, item, price=price if price >= 0 else float(base[item]))
            continue
        now_price = float(on_sale[item] if lo <= at < hi else base[item])
        if kind == "purchase":
            sold = ledger.buy(item, quantity, at)
            if sold == 0:
                refused += 1  # sold out: the shopper goes elsewhere
                continue
            emit.storefront(at, kind, item, session, price=now_price, quantity=sold)
            emit.catalog_event(at, "stock_change", item, stock_level=ledger.levels[item])
        elif kind in ("add_to_cart", "remove_from_cart"):
            emit.storefront(at, kind, item, session, price=now_price, quantity=quantity)
        else:
            emit.storefront(at, kind, item, session, price=now_price)
    restock(config.period_ms - 1)
    _log_day(config, day_end, len(emit.events) - day_start_count)
    return refused


def _log_day(config: SimulationConfig, day_end_ms: int, count: int) -> None:
    day = config.start_date + timedelta(days=day_end_ms // DAY_MS - 1)
    log.info("simulated %s: %d events", day.isoformat(), count)


def simulate(config: SimulationConfig) -> SimulationResult:
    """Run the whole simulated period; deterministic in ``config`` (seed included)."""
    world, rng = build_world(config)
    catalog, shoppers, sale = world.catalog, world.shoppers, world.sale
    sale_lo, sale_hi = config.surge_window_ms
    sale_prices = catalog.base_prices.copy()
    discount = rng.uniform(*config.sale_discount, size=len(sale.sale_items))
    sale_prices[sale.sale_items] = np.round(sale_prices[sale.sale_items] * (1 - discount), 2)
    session_steps, meta = _plan_sessions(rng, config, catalog, shoppers, sale)
    steps = _catalog_steps(catalog, sale, sale_prices, (sale_lo, sale_hi)) + session_steps
    delay = tuple(int(m * 60_000) for m in config.restock_delay_minutes)
    stock = catalog.initial_stock.tolist()
    ledger = StockLedger(rng, list(stock), list(stock), delay)  # type: ignore[arg-type]
    emit = _Emitter(config, catalog, meta, [])
    refused = _replay(steps, emit, ledger, (catalog.base_prices, sale_prices), config)
    lines = [e.to_json() for e in emit.events]
    landing = assemble_landing(
        lines,
        [int((e.event_time - config.start).total_seconds() // 86_400) for e in emit.events],
        [isinstance(e, StorefrontEvent) for e in emit.events],
        config.day_dates(),
        rng=np.random.Generator(np.random.PCG64([config.seed, 1])),
        bad_event_rate=config.bad_event_rate,
        duplicate_rate=config.duplicate_rate,
        late_event_rate=config.late_event_rate,
        bad_id_prefix=f"sim-{config.seed}-bad",
    )
    start = config.start
    return SimulationResult(
        config=config,
        events=emit.events,
        lines=lines,
        landing=landing,
        catalog=catalog,
        shoppers=shoppers,
        sale=SaleInfo(
            start=start + timedelta(milliseconds=sale_lo),
            end=start + timedelta(milliseconds=sale_hi),
            sale_prices={catalog.item_ids[i]: float(sale_prices[i]) for i in sale.sale_items},
            viral_items=tuple(catalog.item_ids[i] for i in sale.viral_items),
        ),
        stock_trajectory={
            catalog.item_ids[i]: [(start + timedelta(milliseconds=t), lv) for t, lv in traj]
            for i, traj in sorted(ledger.trajectory.items())
        },
        refused_purchases=refused,
    )
