"""The simulator's promises: determinism, the surge, stock, funnels, tastes and faults."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flashrec.events import (
    CatalogEvent,
    Rejection,
    StorefrontEvent,
    parse_event,
)
from flashrec.settings import Settings
from flashrec.simulator import (
    BAD_KINDS,
    HistoryManifest,
    SimulationConfig,
    SimulationResult,
    check_stock,
    emit_stream,
    simulate,
    write_history,
)

SMALL = SimulationConfig(
    seed=7,
    n_users=300,
    n_items=150,
    n_categories=8,
    n_brands=24,
    days=2,
    sessions_per_day=240,
    n_sale_items=10,
    stock_range=(5, 25),
    restock_delay_minutes=(10.0, 30.0),
    bad_event_rate=0.01,
    duplicate_rate=0.01,
    late_event_rate=0.02,
)


@pytest.fixture(scope="module")
def result() -> SimulationResult:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> HistoryManifest:
    """SMALL written once (write_history simulates again, independently of ``result``)."""
    return write_history(SMALL, tmp_path_factory.mktemp("landing"), source="sim")


def _storefront(result: SimulationResult) -> list[StorefrontEvent]:
    return [e for e in result.events if isinstance(e, StorefrontEvent)]


def test_same_seed_same_bytes_other_seed_differs(
    result: SimulationResult, manifest: HistoryManifest
) -> None:
    expected = ["".join(line + "\n" for line in day.lines).encode() for day in result.landing]
    assert [f.path.read_bytes() for f in manifest.files] == expected
    tiny = replace(SMALL, days=1, sessions_per_day=30)
    assert simulate(tiny).lines == simulate(tiny).lines
    assert simulate(replace(tiny, seed=8)).lines != simulate(tiny).lines


def test_fault_injection_does_not_change_the_valid_events(result: SimulationResult) -> None:
    clean = simulate(replace(SMALL, bad_event_rate=0, duplicate_rate=0, late_event_rate=0))
    assert clean.lines == result.lines
    assert all(d.bad_lines == d.duplicates == d.late_events == 0 for d in clean.landing)
    assert [line for _, line in clean.landing_lines()] == clean.lines


def test_events_are_in_time_order_with_deterministic_ids(result: SimulationResult) -> None:
    times = [e.event_time for e in result.events]
    assert times == sorted(times)
    assert [e.event_id for e in result.events[:3]] == ["sim-7-0", "sim-7-1", "sim-7-2"]
    assert len({e.event_id for e in result.events}) == len(result.events)


def test_surge_window_has_ten_times_the_baseline_rate(result: SimulationResult) -> None:
    lo, hi = result.sale.start, result.sale.end
    per_minute = Counter(e.event_time.replace(second=0, microsecond=0) for e in _storefront(result))
    inside = [n for m, n in per_minute.items() if lo <= m < hi]
    outside_total = sum(n for m, n in per_minute.items() if not lo <= m < hi)
    outside_minutes = SMALL.days * 24 * 60 - (hi - lo).total_seconds() / 60
    baseline = outside_total / outside_minutes
    surge = sum(inside) / ((hi - lo).total_seconds() / 60)
    assert surge >= 10 * baseline, (surge, baseline)


def test_viral_items_take_a_large_share_of_sale_traffic(result: SimulationResult) -> None:
    lo, hi = result.sale.start, result.sale.end
    views = [e.item_id for e in _storefront(result) if e.event_type == "view"]
    sale_views = [
        e.item_id for e in _storefront(result) if e.event_type == "view" and lo <= e.event_time < hi
    ]
    viral = set(result.sale.viral_items)
    assert sum(i in viral for i in sale_views) / len(sale_views) > 0.25
    outside = [i for i in views if i not in set(sale_views)]
    assert sum(i in viral for i in outside) / max(len(outside), 1) < 0.1


def test_sale_prices_apply_only_inside_the_window(result: SimulationResult) -> None:
    changes = [e for e in result.events if e.event_type == "price_change"]
    assert len(changes) == 2 * len(result.sale.sale_prices)
    at_start = {e.item_id: e.price for e in changes if e.event_time == result.sale.start}
    assert at_start == result.sale.sale_prices
    base = {e.item_id: e.price for e in result.events if e.event_type == "item_created"}
    for e in _storefront(result):
        if e.item_id in at_start:
            in_sale = result.sale.start <= e.event_time < result.sale.end
            assert e.price == (at_start[e.item_id] if in_sale else base[e.item_id])


def _replay_stock(events: list[StorefrontEvent | CatalogEvent]) -> tuple[int, int]:
    """Independent replay: returns (restocks seen, sell-outs seen); asserts consistency."""
    level: dict[str, int] = {}
    expected: dict[str, int] = {}
    restocks = sellouts = 0
    for e in events:
        if e.event_type == "item_created":
            level[e.item_id] = e.stock_level
        elif e.event_type == "purchase":
            level[e.item_id] -= e.quantity
            assert level[e.item_id] >= 0, e
            expected[e.item_id] = level[e.item_id]
            sellouts += level[e.item_id] == 0
        elif e.event_type == "stock_change":
            assert e.stock_level >= 0
            if e.item_id in expected:
                assert e.stock_level == expected.pop(e.item_id), e
            else:
                assert level[e.item_id] == 0 and e.stock_level > 0, e  # restock after sell-out
                restocks += 1
            level[e.item_id] = e.stock_level
    return restocks, sellouts


def test_stock_never_negative_and_matches_replay(result: SimulationResult) -> None:
    restocks, sellouts = _replay_stock(result.events)
    assert sellouts > 0 and restocks > 0 and result.refused_purchases > 0
    assert check_stock(result.events) == []
    for item, trajectory in result.stock_trajectory.items():
        emitted = [
            (e.event_time, e.stock_level)
            for e in result.events
            if e.item_id == item and e.event_type in ("item_created", "stock_change")
        ]
        assert emitted == trajectory
    broken = [e for e in result.events if e.event_type != "stock_change"]
    assert check_stock(broken)  # purchases without their stock_change are noticed


def test_funnel_order_within_sessions(result: SimulationResult) -> None:
    sessions: dict[str, list[StorefrontEvent]] = defaultdict(list)
    for e in _storefront(result):
        sessions[e.session_id].append(e)
    for events in sessions.values():
        assert [e.event_time for e in events] == sorted(e.event_time for e in events)
        assert len({(e.user_id, e.device, e.referrer) for e in events}) == 1
        gaps = [
            (b.event_time - a.event_time).total_seconds()
            for a, b in zip(events, events[1:], strict=False)
        ]
        assert all(0 <= g <= 600 for g in gaps)
        carted: set[str] = set()
        for e in events:
            if e.event_type == "add_to_cart":
                carted.add(e.item_id)
            if e.event_type == "purchase":
                assert e.item_id in carted, e
    counts = Counter(e.event_type for e in _storefront(result))
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0
    assert counts["remove_from_cart"] > 0
    assert {e.device.value for e in _storefront(result)} == {"desktop", "mobile", "tablet", "app"}
    assert {e.referrer for e in _storefront(result)} == {
        "direct",
        "search",
        "social",
        "email",
        "ads",
    }


def test_returning_shoppers_concentrate_on_their_categories(result: SimulationResult) -> None:
    category = {e.item_id: e.category for e in result.events if e.event_type == "item_created"}
    views = [e for e in _storefront(result) if e.event_type == "view"]
    global_share = Counter(category[e.item_id] for e in views)
    total = sum(global_share.values())
    names = result.catalog.category_names
    liked = {s.user_id: {names[c] for c in s.categories} for s in result.shoppers}
    per_user: dict[str, list[str]] = defaultdict(list)
    for e in views:
        if e.user_id is not None:
            per_user[e.user_id].append(category[e.item_id])
    ratios, shares = [], []
    for user, cats in per_user.items():
        if len(cats) >= 8:
            share = sum(c in liked[user] for c in cats) / len(cats)
            expected = sum(global_share[c] for c in liked[user]) / total
            shares.append(share)
            ratios.append(share / expected)
    assert len(ratios) >= 20
    assert sum(shares) / len(shares) > 0.6
    assert sorted(ratios)[len(ratios) // 2] > 2.0  # median shopper: 2x above global share


def test_anonymous_and_returning_shoppers(result: SimulationResult) -> None:
    sessions_of: dict[str | None, set[str]] = defaultdict(set)
    days_of: dict[str, set[object]] = defaultdict(set)
    for e in _storefront(result):
        sessions_of[e.user_id].add(e.session_id)
        if e.user_id is not None:
            days_of[e.user_id].add(e.event_time.date())
    anonymous_sessions = len(sessions_of.pop(None))
    returning_sessions = sum(len(s) for s in sessions_of.values())
    share = anonymous_sessions / (anonymous_sessions + returning_sessions)
    assert abs(share - SMALL.anonymous_share) < 0.07
    assert sum(len(days) >= 2 for days in days_of.values()) >= 20
    assert max(len(s) for s in sessions_of.values()) >= 3


def test_new_items_appear_mid_period_and_are_not_seen_before(result: SimulationResult) -> None:
    created = {e.item_id: e.event_time for e in result.events if e.event_type == "item_created"}
    start = SMALL.start
    late_items = {i for i, t in created.items() if t > start + timedelta(hours=6)}
    assert len(late_items) >= 0.05 * SMALL.n_items
    for e in result.events:
        assert e.event_time >= created[e.item_id], e
    assert any(e.item_id in late_items for e in _storefront(result))


def test_injected_bad_lines_are_rejected_and_the_rest_parse(result: SimulationResult) -> None:
    rejections: list[Rejection] = []
    parsed_ids: Counter[str] = Counter()
    for _, line in result.landing_lines():
        parsed = parse_event(line)
        if isinstance(parsed, Rejection):
            rejections.append(parsed)
        else:
            parsed_ids[parsed.event_id] += 1
    assert len(rejections) == sum(d.bad_lines for d in result.landing) > 0
    assert all(r.reason and r.field and r.raw for r in rejections)
    fields = Counter(r.field for r in rejections)
    assert {"payload", "item_id", "price", "event_type", "event_time"} <= set(fields)
    assert set(parsed_ids) == {e.event_id for e in result.events}  # nothing lost
    assert sum(n - 1 for n in parsed_ids.values()) == sum(d.duplicates for d in result.landing)
    assert len(BAD_KINDS) == 6


def test_manifest_counts_add_up_and_late_events_sit_in_next_day(
    result: SimulationResult, manifest: HistoryManifest
) -> None:
    root = manifest.landing_dir
    assert [f.path for f in manifest.files] == [
        root / "sim" / f"dt={d.isoformat()}" / "part-00000.jsonl" for d in SMALL.day_dates()
    ]
    for f in manifest.files:
        lines = f.path.read_text().splitlines()
        assert len(lines) == f.lines == f.valid_events + f.duplicates + f.bad_lines
        events = [p for p in map(parse_event, lines) if not isinstance(p, Rejection)]
        assert len({e.event_id for e in events}) == f.valid_events
        late = [e for e in events if e.event_time.date() < f.day]
        assert len({e.event_id for e in late}) == f.late_events
        assert all(e.event_time.date() == f.day - timedelta(days=1) for e in late)
        on_time = [e.event_time for e in events if e.event_time.date() == f.day]
        assert on_time == sorted(on_time)
    assert manifest.files[0].late_events == 0 and manifest.files[1].late_events > 0
    assert manifest.totals["valid_events"] == len(result.events)
    assert json.loads(json.dumps(manifest.to_dict()))["files"][0]["day"] == "2026-11-20"


def test_write_history_is_idempotent(tmp_path: Path) -> None:
    config = replace(SMALL, sessions_per_day=60)
    first = write_history(config, tmp_path)
    assert all(f.written for f in first.files)
    stamps = [f.path.stat().st_mtime_ns for f in first.files]
    second = write_history(config, tmp_path)
    assert not any(f.written for f in second.files)
    assert [f.path.stat().st_mtime_ns for f in second.files] == stamps
    first.files[0].path.write_text("tampered\n")
    third = write_history(config, tmp_path)
    assert [f.written for f in third.files] == [True, False]
    assert first.files[0].path.read_bytes() != b"tampered\n"
    assert not list(tmp_path.rglob("*.tmp"))


def test_default_demo_config_from_settings() -> None:
    settings = Settings.from_env(seed=5, sim_users=10, sim_days=1, sim_start_date="2026-01-02")
    config = SimulationConfig.from_settings(settings, surge_factor=50.0)
    assert (config.seed, config.n_users, config.days, config.surge_factor) == (5, 10, 1, 50.0)
    assert config.start == datetime(2026, 1, 2, tzinfo=UTC)
    assert (config.n_items, config.sessions_per_day) == (
        settings.sim_items,
        settings.sim_sessions_per_day,
    )
    with pytest.raises(ValueError, match="surge window"):
        replace(config, surge_start_hour=23.5)
    with pytest.raises(TypeError):
        SimulationConfig.from_settings(settings, no_such_field=1)


class FakeTime:
    """A clock that only moves when slept on (or when a slow sink says so)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.t += seconds
        self.slept += seconds

    def now(self) -> datetime:
        return datetime(2026, 11, 24, 12, tzinfo=UTC) + timedelta(seconds=self.t)


def test_emit_stream_paces_to_the_target_rate() -> None:
    fake = FakeTime()
    batches: list[tuple[float, list[str]]] = []
    stats = emit_stream(
        SMALL, 500.0, 2.0, lambda b: batches.append((fake.t, b)), batch_size=50,
        clock=fake.clock, sleep=fake.sleep, now_fn=fake.now,
    )  # fmt: skip
    assert stats.sent == 1000 == sum(len(b) for _, b in batches)
    assert stats.achieved_rate_eps == pytest.approx(500.0)
    assert stats.elapsed_s == pytest.approx(2.0)
    for k, (at, batch) in enumerate(batches):  # never ahead of schedule
        assert at >= sum(len(b) for _, b in batches[:k]) / 500.0 - 1e-9
        assert len(batch) == 25  # rate/20 per batch: smooth at low rates
    parsed = [parse_event(line) for _, b in batches for line in b]
    events = {p.event_id: p for p in parsed if not isinstance(p, Rejection)}
    assert sum(isinstance(p, Rejection) for p in parsed) == stats.bad_lines
    live = [e for e in events.values() if isinstance(e, StorefrontEvent)]
    assert live and all(e.event_time <= fake.now() for e in live)
    assert sum(e.event_time >= fake.now() - timedelta(seconds=3) for e in live) > 0.9 * len(live)
    assert check_stock(sorted(events.values(), key=lambda e: int(e.event_id.split("-")[-1]))) == []


def test_emit_stream_ramp_and_slow_sink() -> None:
    fake = FakeTime()
    stats = emit_stream(
        SMALL, 1.0, 1.0, lambda b: None, clock=fake.clock, sleep=fake.sleep,
        now_fn=fake.now, ramp=[(100.0, 1.0), (1000.0, 1.0), (10000.0, 0.2)],
    )  # fmt: skip
    assert [s.sent for s in stats.stages] == [100, 1000, 2000]
    assert [round(s.achieved_rate_eps) for s in stats.stages] == [100, 1000, 10000]
    assert stats.elapsed_s == pytest.approx(2.2)

    slow = FakeTime()

    def sink(batch: list[str]) -> None:
        slow.t += 0.5  # 50-event batches every 0.5 s: the sink takes 100 events/s at most

    stats = emit_stream(
        SMALL, 1000.0, 2.0, sink, batch_size=100, clock=slow.clock, sleep=slow.sleep,
        now_fn=slow.now,
    )  # fmt: skip
    assert stats.sent == 200 and stats.achieved_rate_eps == pytest.approx(100.0)
    assert slow.slept == 0.0
    with pytest.raises(ValueError):
        emit_stream(SMALL, 0.0, 1.0, sink)
