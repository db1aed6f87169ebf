"""A live event stream at a target rate, for the streaming path and its benchmarks.

Live events carry the wall-clock time they were generated at, so the stream side can
measure freshness (event_time -> feature visible). Behaviour comes from the same
catalog, shoppers and session planner as the batch history, in flash-sale mode.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from flashrec.events import CatalogEvent, StorefrontEvent
from flashrec.simulator.catalog import StockLedger, build_catalog
from flashrec.simulator.config import SimulationConfig
from flashrec.simulator.faults import BAD_KINDS, make_bad_line
from flashrec.simulator.shoppers import (
    Action,
    SaleMix,
    TasteModel,
    build_shoppers,
    plan_session,
    session_context,
)

Sink = Callable[[list[str]], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StageStats:
    target_rate_eps: float
    duration_s: float
    sent: int
    batches: int
    elapsed_s: float

    @property
    def achieved_rate_eps(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class EmitStats:
    """What reached the sink: ``sent`` lines (faults included) over ``elapsed_s``."""

    sent: int
    batches: int
    elapsed_s: float
    bad_lines: int
    duplicates: int
    late_events: int
    stages: list[StageStats]

    @property
    def achieved_rate_eps(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def target_rate_eps(self) -> float:
        planned = sum(s.target_rate_eps * s.duration_s for s in self.stages)
        total = sum(s.duration_s for s in self.stages)
        return planned / total if total > 0 else 0.0


@dataclass
class _LiveSession:
    session_id: str
    user_id: str | None
    device: str
    referrer: str
    actions: list[Action]
    pos: int = 0


class LiveTraffic:
    """Endless payload lines: catalog bootstrap first, then interleaved shopper sessions.

    All items exist from the start; with ``sale=True`` the sale items are discounted and
    the viral items draw the configured share of views. Faults follow the config rates;
    late events are backdated by up to ``config.live_late_max_s``. ``bootstrap=False`` keeps
    the catalog lines (``item_created``, sale ``price_change``) out of the stream, for a run
    that follows one which sent them (same seed, same catalog): otherwise a slow first
    stage would carry nothing but catalog events.
    """

    def __init__(
        self,
        config: SimulationConfig,
        now_fn: Callable[[], datetime] = _utcnow,
        run_id: str = "0",
        *,
        sale: bool = True,
        concurrency: int = 64,
        bootstrap: bool = True,
    ) -> None:
        self.config, self.now_fn, self.run_id = config, now_fn, run_id
        self.rng = np.random.Generator(np.random.PCG64([config.seed, 2]))
        self.fault_rng = np.random.Generator(np.random.PCG64([config.seed, 3]))
        self.catalog = build_catalog(
            self.rng,
            n_items=config.n_items,
            n_categories=config.n_categories,
            n_brands=config.n_brands,
            zipf_exponent=config.zipf_exponent,
            new_item_share=0.0,
            new_items_window_ms=(0, 1),
            stock_range=config.stock_range,
        )
        self.shoppers = build_shoppers(self.rng, self.catalog, config.n_users)
        activity = np.array([s.activity for s in self.shoppers])
        self._activity = activity / activity.sum()
        self.taste = TasteModel(self.catalog)
        self.sale = self._pick_sale() if sale else None
        self.prices = self.catalog.base_prices.copy()
        delay = tuple(int(s * 1000) for s in config.live_restock_delay_s)
        stock = self.catalog.initial_stock.tolist()
        self.ledger = StockLedger(self.rng, list(stock), list(stock), delay)  # type: ignore[arg-type]
        self._t0 = now_fn()
        self._n_events = 0
        self._n_sessions = 0
        self.counts = {"bad": 0, "dup": 0, "late": 0}  # among lines handed out so far
        self._n_bad = 0
        self._buffer: deque[tuple[str, str | None]] = deque()  # (line, fault kind)
        self._bootstrap()
        if not bootstrap:
            self._buffer.clear()  # same prices and stock as a bootstrapped run, no lines
        self._active = [self._new_session() for _ in range(concurrency)]

    def _pick_sale(self) -> SaleMix:
        c, cfg = self.catalog, self.config
        items = np.sort(
            self.rng.choice(c.size, size=cfg.n_sale_items, replace=False, p=c.popularity)
        )
        viral = np.sort(self.rng.choice(items, size=cfg.n_viral_items, replace=False))
        return SaleMix(items, viral, cfg.sale_share, cfg.viral_share)

    def _bootstrap(self) -> None:
        c = self.catalog
        for i in range(c.size):
            self._catalog(
                "item_created", i, category=c.category_of(i), brand=c.brand_of(i),
                price=float(c.base_prices[i]), stock_level=self.ledger.open(i, 0),
            )  # fmt: skip
        if self.sale is not None:
            low, high = self.config.sale_discount
            for i in self.sale.sale_items.tolist():
                self.prices[i] = round(
                    float(c.base_prices[i]) * (1 - self.rng.uniform(low, high)), 2
                )
                self._catalog("price_change", i, price=float(self.prices[i]))

    def _base(self, item: int, when: datetime | None = None) -> dict[str, object]:
        self._n_events += 1
        return {
            "event_id": f"live-{self.config.seed}-{self.run_id}-{self._n_events}",
            "event_time": when or self.now_fn(),
            "item_id": self.catalog.item_ids[item],
        }

    def _catalog(self, event_type: str, item: int, **fields: object) -> None:
        event = CatalogEvent(event_type=event_type, **self._base(item), **fields)  # type: ignore[arg-type]
        self._push(event.to_json())

    def _push(self, line: str, fault: str | None = None) -> None:
        self._buffer.append((line, fault))
        if self.fault_rng.random() < self.config.duplicate_rate:
            self._buffer.append((line, "dup"))
        if self.fault_rng.random() < self.config.bad_event_rate:
            kind = BAD_KINDS[int(self.fault_rng.integers(len(BAD_KINDS)))]
            self._n_bad += 1
            bad_id = f"live-{self.config.seed}-{self.run_id}-bad-{self._n_bad}"
            self._buffer.append((make_bad_line(line, kind, bad_id), "bad"))

    def _maybe_late(self, now: datetime, event_type: str) -> tuple[datetime, str | None]:
        """Backdate a few events, as an app flushing its offline buffer would.

        Purchases stay on time so that stock replays in event-time order stay exact.
        """
        if event_type == "purchase" or self.fault_rng.random() >= self.config.late_event_rate:
            return now, None
        lag = float(self.fault_rng.uniform(60.0, self.config.live_late_max_s))
        return now - timedelta(seconds=lag), "late"

    def _new_session(self) -> _LiveSession:
        anonymous = self.rng.random() < self.config.anonymous_share
        shopper = None
        if anonymous:
            cats = np.bincount(self.catalog.categories, weights=self.catalog.popularity)
            weights = self.taste.anonymous_weights(
                int(self.rng.choice(len(cats), p=cats / cats.sum()))
            )
        else:
            shopper = self.shoppers[int(self.rng.choice(len(self.shoppers), p=self._activity))]
            weights = self.taste.shopper_weights(shopper)
        in_sale = self.sale is not None
        probs = self.taste.session_probs(weights, np.ones(self.catalog.size), self.sale)
        device, referrer = session_context(self.rng, shopper, in_sale=in_sale)
        actions = plan_session(self.rng, probs, self.config.funnel, in_sale=in_sale)
        self._n_sessions += 1
        sid = f"ls-{self.config.seed}-{self.run_id}-{self._n_sessions}"
        user_id = None if shopper is None else shopper.user_id
        return _LiveSession(sid, user_id, device, referrer, actions)

    def _step(self) -> None:
        """Advance a random active session by one action: sessions interleave as in real traffic."""
        now = self.now_fn()
        now_ms = int((now - self._t0).total_seconds() * 1000)
        for _, item, level in self.ledger.restocks_due(now_ms):
            self._catalog("stock_change", item, stock_level=level)
        k = int(self.rng.integers(len(self._active)))
        session = self._active[k]
        action = session.actions[session.pos]
        session.pos += 1
        if session.pos >= len(session.actions):
            self._active[k] = self._new_session()
        quantity = action.quantity
        if action.event_type == "purchase":
            quantity = self.ledger.buy(action.item, action.quantity, now_ms)
            if quantity == 0:
                return  # sold out: the shopper goes elsewhere
        when, fault = self._maybe_late(now, action.event_type)
        event = StorefrontEvent(
            event_type=action.event_type,  # type: ignore[arg-type]
            **self._base(action.item, when),  # type: ignore[arg-type]
            session_id=session.session_id,
            user_id=session.user_id,
            device=session.device,  # type: ignore[arg-type]
            referrer=session.referrer,
            price=float(self.prices[action.item]),
            quantity=quantity,
        )
        self._push(event.to_json(), fault)
        if action.event_type == "purchase":
            self._catalog("stock_change", action.item, stock_level=self.ledger.levels[action.item])

    def next_lines(self, n: int) -> list[str]:
        """Exactly ``n`` payload lines (faults included), generated on demand."""
        while len(self._buffer) < n:
            self._step()
        out = []
        for _ in range(n):
            line, fault = self._buffer.popleft()
            if fault is not None:
                self.counts[fault] += 1
            out.append(line)
        return out


def _run_stage(
    traffic: LiveTraffic,
    rate: float,
    seconds: float,
    sink: Sink,
    batch_size: int,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> StageStats:
    """Send ``rate * seconds`` lines, never ahead of schedule; behind schedule, send flat out."""
    target = int(round(rate * seconds))
    per_batch = max(1, min(batch_size, int(rate / 20)))  # at least ~20 batches/s when it can
    t0 = clock()
    sent = batches = 0
    while sent < target:
        elapsed = clock() - t0
        if elapsed >= seconds:
            break
        wait = sent / rate - elapsed
        if wait > 1e-6:  # a tolerance: float error must not turn into endless tiny sleeps
            sleep(wait)
            continue
        n = min(per_batch, target - sent)
        sink(traffic.next_lines(n))
        sent += n
        batches += 1
    elapsed = clock() - t0
    if seconds - elapsed > 1e-6:
        sleep(seconds - elapsed)  # a stage lasts its duration, so ramp stages stay comparable
        elapsed = clock() - t0
    return StageStats(rate, seconds, sent, batches, elapsed)


def emit_stream(
    config: SimulationConfig,
    rate_eps: float,
    duration_s: float,
    sink: Sink,
    batch_size: int = 100,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    now_fn: Callable[[], datetime] = _utcnow,
    *,
    ramp: Sequence[tuple[float, float]] | None = None,
    sale: bool = True,
    run_id: str | None = None,
    bootstrap: bool = True,
) -> EmitStats:
    """Pace live events into ``sink`` at ``rate_eps`` for ``duration_s`` seconds.

    ``ramp`` replaces (rate_eps, duration_s) with stages of (rate, seconds), e.g.
    ``[(100, 30), (1000, 30), (10000, 30)]`` for a 10x-100x benchmark ramp. ``run_id``
    (default: the start time) keeps event ids of separate runs distinct for dedup.
    ``bootstrap=False`` leaves out the catalog lines (see ``LiveTraffic``).
    """
    stages = list(ramp) if ramp else [(rate_eps, duration_s)]
    if any(rate <= 0 or seconds < 0 for rate, seconds in stages):
        raise ValueError("every stage needs rate > 0 and seconds >= 0")
    traffic = LiveTraffic(
        config,
        now_fn,
        run_id or now_fn().strftime("%Y%m%dT%H%M%S%f"),
        sale=sale,
        bootstrap=bootstrap,
    )
    done = [_run_stage(traffic, r, s, sink, batch_size, clock, sleep) for r, s in stages]
    return EmitStats(
        sent=sum(s.sent for s in done),
        batches=sum(s.batches for s in done),
        elapsed_s=sum(s.elapsed_s for s in done),
        bad_lines=traffic.counts["bad"],
        duplicates=traffic.counts["dup"],
        late_events=traffic.counts["late"],
        stages=done,
    )
