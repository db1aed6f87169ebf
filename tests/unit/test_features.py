"""One definition per feature: exact values, window edges, and order-insensitivity."""

from __future__ import annotations

import json
import random

import pytest

from flashrec.features import FEATURE_VIEWS, ITEM, SESSION, USER, FeatureEvent
from flashrec.features.windows import LONGEST_WINDOW_S

T0 = 1_795_000_000_000  # ms


def ev(i: int, seconds: float, kind: str = "view", item: str = "i1", **kw) -> FeatureEvent:
    return FeatureEvent(
        event_id=f"e{i:05d}",
        event_time_ms=T0 + int(seconds * 1000),
        event_type=kind,
        item_id=item,
        user_id=kw.get("user", "u1"),
        session_id=kw.get("session", "s1"),
        price=kw.get("price"),
        category=kw.get("category", "shoes"),
        stock_level=kw.get("stock"),
    )


def test_window_edges_are_half_open_on_event_seconds():
    events = [ev(1, 0), ev(2, 1), ev(3, 299), ev(4, 300)]
    values = USER.fold(events)
    # as of second 300 the 5-minute window is (0, 300]: the event at second 0 is out
    assert values["user_views_5m"] == 3
    assert values["user_views_1h"] == 4
    later = USER.fold([*events, ev(5, 3600)])
    assert later["user_views_1h"] == 4  # (0, 3600]: seconds 1, 299, 300, 3600
    assert later["user_views_5m"] == 1


def test_user_features():
    events = [
        ev(1, 0, "view", "a", category="shoes"),
        ev(2, 10, "click", "a", category="shoes"),
        ev(3, 20, "add_to_cart", "b", category="bags", price=5.0),
        ev(4, 30, "purchase", "b", category="bags", price=5.0, session="s2"),
    ]
    values = USER.fold(events)
    assert values["user_views_5m"] == 1 and values["user_carts_5m"] == 1
    assert values["user_purchases_total"] == 1 and values["user_sessions_total"] == 2
    assert json.loads(values["user_recent_items"]) == ["b", "a"]
    assert values["user_top_category"] == "bags"  # 4 + 8 against 1 + 2
    assert values["user_top_category_share"] == pytest.approx(12 / 15)


def test_session_features():
    events = [ev(1, 0, item="a"), ev(2, 65, item="b"), ev(3, 70, "add_to_cart", "b", price=3.0)]
    values = SESSION.fold(events)
    assert values["session_events"] == 3 and values["session_carts"] == 1
    assert values["session_distinct_items"] == 2 and values["session_duration_s"] == 70
    assert values["session_last_item"] == "b"
    assert not values["session_is_anonymous"]
    anonymous = SESSION.fold([ev(1, 0, user=None)])
    assert anonymous["session_is_anonymous"]


def test_item_stock_price_and_trend():
    created = FeatureEvent(
        "c1", T0, "item_created", "i1", price=20.0, category="shoes", stock_level=2
    )
    events = [
        created,
        *[ev(i, 3000 + i, "view") for i in range(1, 25)],
        FeatureEvent("c2", T0 + 3100_000, "stock_change", "i1", stock_level=0),
        FeatureEvent("c3", T0 + 3050_000, "price_change", "i1", price=15.0),
    ]
    values = ITEM.fold(events)
    assert values["item_stock_level"] == 0 and values["item_is_sold_out"]
    assert values["item_price"] == 15.0 and values["item_category"] == "shoes"
    assert values["item_views_1h"] == 24 and values["item_views_5m"] == 24
    assert values["item_trending_score"] == pytest.approx(12 * 24 / (24 + 12), abs=1e-6)


def random_history(seed: int, n: int = 600) -> list[FeatureEvent]:
    rng = random.Random(seed)
    kinds = ["view"] * 6 + ["click"] * 2 + ["add_to_cart", "purchase", "remove_from_cart"]
    events = []
    for i in range(n):
        at = rng.uniform(0, 3 * LONGEST_WINDOW_S)
        if rng.random() < 0.05:
            events.append(
                FeatureEvent(
                    f"c{i:05d}",
                    T0 + int(at * 1000),
                    "stock_change",
                    f"i{rng.randrange(5)}",
                    stock_level=rng.randrange(4),
                )
            )
            continue
        events.append(
            ev(
                i,
                at,
                rng.choice(kinds),
                f"i{rng.randrange(30)}",
                user=f"u{rng.randrange(3)}",
                session=f"s{rng.randrange(6)}",
                category=rng.choice(["shoes", "bags", "hats"]),
                price=9.5,
            )
        )
    return sorted(events, key=lambda e: (e.event_time_ms, e.event_id))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("view", FEATURE_VIEWS, ids=lambda v: v.name)
def test_arrival_order_does_not_change_final_values(view, seed):
    """Batch folds in event-time order, the stream in arrival order: same answer."""
    history = random_history(seed)
    rng = random.Random(seed * 100)
    # arrival order: mostly in order, with late events up to 15 minutes behind
    arrival = sorted(history, key=lambda e: e.event_time_ms + rng.uniform(0, 900_000))
    assert arrival != history
    keys = {view.key_of(e) for e in history} - {None}
    assert keys
    for key in keys:
        in_time = [e for e in history if view.key_of(e) == key]
        in_arrival = [e for e in arrival if view.key_of(e) == key]
        assert view.fold(in_time) == view.fold(in_arrival), (view.name, key)


def test_feature_names_are_unique_and_typed():
    names = [f.name for v in FEATURE_VIEWS for f in v.features]
    assert len(names) == len(set(names))
    for view in FEATURE_VIEWS:
        produced = view.fold([ev(1, 0, user="u", session="s")])
        assert set(produced) == set(view.feature_names), view.name
        assert {f.dtype for f in view.features} <= {"int64", "float64", "string", "bool"}


@pytest.mark.parametrize("seed", [5, 6])
def test_incremental_windows_equal_a_brute_force_count(seed):
    """The running totals (fast path) against counting the raw events, late ones too."""
    from flashrec.features import windows

    rng = random.Random(seed)
    state = windows.new_buckets()
    seen: list[tuple[int, str]] = []
    newest = 0
    for _ in range(3000):
        newest = max(newest, rng.randrange(newest, newest + 4)) if seen else 10_000
        second = newest - int(rng.expovariate(1 / 60)) if rng.random() < 0.2 else newest
        kind = rng.choice(windows.KINDS)
        windows.add(state, second, newest, kind)
        windows.prune(state, newest)
        seen.append((second, kind))
        if rng.random() < 0.05:
            for width in windows.WINDOWS_S:
                expected = {k: 0 for k in windows.KINDS}
                for s, k in seen:
                    if newest - width < s <= newest:
                        expected[k] += 1
                assert windows.window_counts(state, newest, width) == expected
