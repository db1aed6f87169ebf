"""Every feature the platform serves, each defined once (see flashrec.features)."""

from __future__ import annotations

import json
from typing import Any

from flashrec.features import windows
from flashrec.features.model import FeatureEvent, FeatureSpec, FeatureView

STOREFRONT_TYPES = frozenset({"view", "click", "add_to_cart", "remove_from_cart", "purchase"})
#: How much each action says about a shopper's taste (category affinity).
INTEREST_WEIGHTS = {"view": 1, "click": 2, "add_to_cart": 4, "remove_from_cart": 0, "purchase": 8}
RECENT_USER_ITEMS = 20
RECENT_SESSION_ITEMS = 10
SHORT_WINDOW_S = 300
LONG_WINDOW_S = 3600


def _second(ms: int) -> int:
    return ms // 1000


def _newer(a: tuple[int, str], b: tuple[int, str] | None) -> bool:
    """Event order is (time, event_id): ties broken the same way in every engine."""
    return b is None or a > b


def _remember_recent(recent: dict[str, list], event: FeatureEvent, keep: int) -> None:
    """Keep the ``keep`` items with the latest (time, event_id), one entry per item."""
    stamp = [event.event_time_ms, event.event_id]
    current = recent.get(event.item_id)
    if current is not None and current >= stamp:
        return
    if current is None and len(recent) >= keep:
        oldest = min(recent, key=lambda item: recent[item])
        if recent[oldest] >= stamp:
            return
        del recent[oldest]
    recent[event.item_id] = stamp


def _recent_list(recent: dict[str, list]) -> str:
    """Most recent first, as a JSON list (a string feature in every store)."""
    return json.dumps(
        [item for item, _ in sorted(recent.items(), key=lambda kv: kv[1], reverse=True)]
    )


def _window_features(prefix: str, buckets: dict, newest_s: int) -> dict[str, int]:
    short = windows.window_counts(buckets, newest_s, SHORT_WINDOW_S)
    long = windows.window_counts(buckets, newest_s, LONG_WINDOW_S)
    return {
        f"{prefix}_views_5m": short["view"],
        f"{prefix}_clicks_5m": short["click"],
        f"{prefix}_carts_5m": short["add_to_cart"],
        f"{prefix}_purchases_5m": short["purchase"],
        f"{prefix}_views_1h": long["view"],
        f"{prefix}_clicks_1h": long["click"],
        f"{prefix}_carts_1h": long["add_to_cart"],
        f"{prefix}_purchases_1h": long["purchase"],
    }


def _window_specs(prefix: str, what: str) -> tuple[FeatureSpec, ...]:
    specs = []
    for window, label in (("5m", "5 minutes"), ("1h", "hour")):
        for kind, noun in (
            ("views", "views"),
            ("clicks", "clicks"),
            ("carts", "adds to cart"),
            ("purchases", "purchases"),
        ):
            specs.append(
                FeatureSpec(
                    f"{prefix}_{kind}_{window}",
                    "int64",
                    f"{what} {noun} in the last {label} of event time",
                )
            )
    return tuple(specs)


# ---- user ---------------------------------------------------------------------------------


def _user_state() -> dict[str, Any]:
    return {
        "max_ms": None,
        "buckets": windows.new_buckets(),
        "purchases": 0,
        "sessions": set(),
        "recent": {},
        "interest": {},
    }


def _user_update(state: dict[str, Any], event: FeatureEvent) -> None:
    if event.event_type not in STOREFRONT_TYPES:
        return
    newest = max(state["max_ms"] or event.event_time_ms, event.event_time_ms)
    state["max_ms"] = newest
    windows.add(state["buckets"], _second(event.event_time_ms), _second(newest), event.event_type)
    windows.prune(state["buckets"], _second(newest))
    state["purchases"] += event.event_type == "purchase"
    if event.session_id:
        state["sessions"].add(event.session_id)
    _remember_recent(state["recent"], event, RECENT_USER_ITEMS)
    weight = INTEREST_WEIGHTS[event.event_type]
    if event.category and weight:
        state["interest"][event.category] = state["interest"].get(event.category, 0) + weight


def _user_values(state: dict[str, Any]) -> dict[str, Any]:
    interest: dict[str, int] = state["interest"]
    total = sum(interest.values())
    top = min(interest, key=lambda c: (-interest[c], c)) if interest else None
    return {
        **_window_features("user", state["buckets"], _second(state["max_ms"] or 0)),
        "user_purchases_total": state["purchases"],
        "user_sessions_total": len(state["sessions"]),
        "user_recent_items": _recent_list(state["recent"]),
        "user_top_category": top,
        "user_top_category_share": round(interest[top] / total, 6) if top else 0.0,
    }


USER = FeatureView(
    name="user_activity",
    entity="user_id",
    description="What a known shopper did recently and what they like.",
    features=(
        *_window_specs("user", "Shopper's"),
        FeatureSpec("user_purchases_total", "int64", "Purchases ever made"),
        FeatureSpec("user_sessions_total", "int64", "Distinct sessions ever seen"),
        FeatureSpec("user_recent_items", "string", "JSON list of the 20 latest distinct items"),
        FeatureSpec("user_top_category", "string", "Category with the most weighted interest"),
        FeatureSpec("user_top_category_share", "float64", "Its share of all weighted interest"),
    ),
    key_of=lambda e: e.user_id if e.event_type in STOREFRONT_TYPES else None,
    new_state=_user_state,
    update=_user_update,
    values=_user_values,
)

# ---- session ------------------------------------------------------------------------------


def _session_state() -> dict[str, Any]:
    return {
        "min_ms": None,
        "max_ms": None,
        "counts": {},
        "items": set(),
        "recent": {},
        "last": None,
        "user_id": None,
    }


def _session_update(state: dict[str, Any], event: FeatureEvent) -> None:
    if event.event_type not in STOREFRONT_TYPES:
        return
    t = event.event_time_ms
    state["min_ms"] = t if state["min_ms"] is None else min(state["min_ms"], t)
    state["max_ms"] = t if state["max_ms"] is None else max(state["max_ms"], t)
    state["counts"][event.event_type] = state["counts"].get(event.event_type, 0) + 1
    state["items"].add(event.item_id)
    _remember_recent(state["recent"], event, RECENT_SESSION_ITEMS)
    stamp = (t, event.event_id)
    if _newer(stamp, state["last"] and tuple(state["last"][:2])):
        state["last"] = [t, event.event_id, event.item_id]
    if event.user_id:
        state["user_id"] = event.user_id


def _session_values(state: dict[str, Any]) -> dict[str, Any]:
    counts = state["counts"]
    return {
        "session_events": sum(counts.values()),
        "session_views": counts.get("view", 0),
        "session_clicks": counts.get("click", 0),
        "session_carts": counts.get("add_to_cart", 0),
        "session_purchases": counts.get("purchase", 0),
        "session_distinct_items": len(state["items"]),
        "session_duration_s": ((state["max_ms"] or 0) - (state["min_ms"] or 0)) // 1000,
        "session_last_item": state["last"][2] if state["last"] else None,
        "session_recent_items": _recent_list(state["recent"]),
        "session_is_anonymous": state["user_id"] is None,
    }


SESSION = FeatureView(
    name="session_activity",
    entity="session_id",
    description="The current visit: how far down the funnel, and what was looked at.",
    features=(
        FeatureSpec("session_events", "int64", "Events in the session"),
        FeatureSpec("session_views", "int64", "Views in the session"),
        FeatureSpec("session_clicks", "int64", "Clicks in the session"),
        FeatureSpec("session_carts", "int64", "Adds to cart in the session"),
        FeatureSpec("session_purchases", "int64", "Purchases in the session"),
        FeatureSpec("session_distinct_items", "int64", "Distinct items touched"),
        FeatureSpec("session_duration_s", "int64", "Seconds from first to latest event"),
        FeatureSpec("session_last_item", "string", "Item of the latest event"),
        FeatureSpec("session_recent_items", "string", "JSON list of the 10 latest items"),
        FeatureSpec("session_is_anonymous", "bool", "No user_id seen in the session"),
    ),
    key_of=lambda e: e.session_id if e.event_type in STOREFRONT_TYPES else None,
    new_state=_session_state,
    update=_session_update,
    values=_session_values,
)

# ---- item ---------------------------------------------------------------------------------


def _item_state() -> dict[str, Any]:
    return {
        "max_ms": None,
        "buckets": windows.new_buckets(),
        "stock": None,
        "price": None,
        "category": None,
    }


def _item_update(state: dict[str, Any], event: FeatureEvent) -> None:
    t = event.event_time_ms
    newest = max(state["max_ms"] or t, t)
    state["max_ms"] = newest
    stamp = [t, event.event_id]
    if event.event_type in STOREFRONT_TYPES:
        windows.add(state["buckets"], _second(t), _second(newest), event.event_type)
        windows.prune(state["buckets"], _second(newest))
        return
    windows.prune(state["buckets"], _second(newest))
    if event.stock_level is not None and (state["stock"] is None or stamp > state["stock"][:2]):
        state["stock"] = [*stamp, event.stock_level]
    if event.price is not None and (state["price"] is None or stamp > state["price"][:2]):
        state["price"] = [*stamp, event.price]
    if event.category and event.event_type == "item_created":
        state["category"] = event.category


def _item_values(state: dict[str, Any]) -> dict[str, Any]:
    counts = _window_features("item", state["buckets"], _second(state["max_ms"] or 0))
    recent = counts["item_views_5m"] + 2 * counts["item_carts_5m"] + 4 * counts["item_purchases_5m"]
    hourly = counts["item_views_1h"] + 2 * counts["item_carts_1h"] + 4 * counts["item_purchases_1h"]
    stock = state["stock"][2] if state["stock"] else None
    return {
        **counts,
        # 12 five-minute slots in an hour: 1.0 means the last 5 minutes ran at the hour's pace.
        "item_trending_score": round(12 * recent / (hourly + 12), 6),
        "item_stock_level": stock,
        "item_is_sold_out": stock == 0,
        "item_price": state["price"][2] if state["price"] else None,
        "item_category": state["category"],
    }


ITEM = FeatureView(
    name="item_activity",
    entity="item_id",
    description="How an item is doing right now: demand windows, trend, stock and price.",
    features=(
        *_window_specs("item", "Item's"),
        FeatureSpec(
            "item_trending_score",
            "float64",
            "Weighted demand of the last 5 minutes against the hour's pace",
        ),
        FeatureSpec("item_stock_level", "int64", "Stock after the latest stock change"),
        FeatureSpec("item_is_sold_out", "bool", "Stock reached zero"),
        FeatureSpec("item_price", "float64", "Latest catalog price"),
        FeatureSpec("item_category", "string", "Category from the catalog"),
    ),
    key_of=lambda e: e.item_id,
    new_state=_item_state,
    update=_item_update,
    values=_item_values,
)

FEATURE_VIEWS: tuple[FeatureView, ...] = (USER, SESSION, ITEM)


def view_by_name(name: str) -> FeatureView:
    for view in FEATURE_VIEWS:
        if view.name == name:
            return view
    raise KeyError(f"unknown feature view {name!r}; known: {[v.name for v in FEATURE_VIEWS]}")
