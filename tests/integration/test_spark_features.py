"""Spark folds the shared feature views over a small hand-made silver set (real Spark, Delta).

The expected values come from the stream path: the same payloads parsed by
``flashrec.events.parse_event`` and turned into FeatureEvents by ``feature_event`` with the
catalog's category, folded by ``FeatureView.fold``. So this also checks Spark-vs-stream
parity of the inputs, not only of the fold.
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from flashrec.events import CatalogEvent, StorefrontEvent, parse_event
from flashrec.features import FEATURE_VIEWS, FeatureEvent, feature_event
from flashrec.settings import Settings
from spark_jobs.features import build_feature_tables, feature_table, fold_history
from spark_jobs.tables import TABLES

pytestmark = pytest.mark.integration

DAY = "2026-11-20"


def _at(minute: int, second: int = 0, ms: int = 0) -> str:
    return f"{DAY}T{10 + minute // 60:02d}:{minute % 60:02d}:{second:02d}.{ms:03d}Z"


def _payloads() -> list[dict]:
    """Two shoppers (one with two sessions), an anonymous visit, items with catalog history,
    an item unknown to the catalog, several events in one millisecond, out-of-order lines."""
    cat = [
        (
            "c1",
            _at(0),
            "item_created",
            "i1",
            {"category": "shoes", "brand": "b", "price": 50, "stock_level": 5},
        ),
        (
            "c2",
            _at(0),
            "item_created",
            "i2",
            {"category": "hats", "brand": "b", "price": 20, "stock_level": 2},
        ),
        ("c3", _at(30), "price_change", "i1", {"price": 40}),
        ("c4", _at(45), "stock_change", "i2", {"stock_level": 0}),
    ]
    shop = [
        ("e01", _at(1), "view", "i1", "u1", "s1"),
        ("e02", _at(2), "click", "i1", "u1", "s1"),
        ("e03", _at(2), "add_to_cart", "i2", "u1", "s1"),  # same ms as e02
        ("e04", _at(3), "purchase", "i2", "u1", "s1"),
        ("e05", _at(9), "view", "i2", None, "s2"),  # anonymous
        ("e06", _at(8), "view", "i1", None, "s2"),  # earlier than the line above
        ("e07", _at(70), "view", "i3", "u1", "s3"),  # u1's second session; i3 not in catalog
        ("e08", _at(71), "remove_from_cart", "i2", "u1", "s3"),
        ("e09", _at(80), "view", "i1", "u2", "s4"),
        ("e10", _at(80, ms=1), "add_to_cart", "i1", "u2", "s4"),
        ("e11", _at(200), "purchase", "i1", "u2", "s4"),  # > 1 h later: windows slide
    ]
    out = [
        {"event_id": i, "event_time": t, "event_type": k, "item_id": item, **extra}
        for i, t, k, item, extra in cat
    ]
    for i, t, k, item, user, session in shop:
        payload = {"event_id": i, "event_time": t, "event_type": k, "item_id": item}
        payload |= {"user_id": user, "session_id": session}
        if k in {"add_to_cart", "purchase"}:
            payload["price"] = 40
        out.append(payload)
    return out


def _expected_events() -> list[FeatureEvent]:
    parsed = [parse_event(p) for p in _payloads()]
    assert all(isinstance(e, StorefrontEvent | CatalogEvent) for e in parsed), parsed
    category = {e.item_id: e.category for e in parsed if isinstance(e, CatalogEvent) and e.category}
    return [feature_event(e, category.get(e.item_id)) for e in parsed]


def _write_silver(settings: Settings) -> None:
    """Silver and gold/catalog as delta-rs tables holding the columns the job reads."""
    parsed = [parse_event(p) for p in _payloads()]
    storefront = [e for e in parsed if isinstance(e, StorefrontEvent)]
    catalog = [e for e in parsed if isinstance(e, CatalogEvent)]
    ts = pa.timestamp("us", tz="UTC")
    tables = {
        "silver/events": pa.table(
            {
                "event_id": [e.event_id for e in storefront],
                "event_time": pa.array([e.event_time for e in storefront], ts),
                "event_type": [str(e.event_type) for e in storefront],
                "user_id": pa.array([e.user_id for e in storefront], pa.string()),
                "session_id": [e.session_id for e in storefront],
                "item_id": [e.item_id for e in storefront],
                "price": pa.array([e.price for e in storefront], pa.float64()),
                "quantity": pa.array([e.quantity for e in storefront], pa.int32()),
                "event_date": [DAY] * len(storefront),
            }
        ),
        "silver/catalog_events": pa.table(
            {
                "event_id": [e.event_id for e in catalog],
                "event_time": pa.array([e.event_time for e in catalog], ts),
                "event_type": [str(e.event_type) for e in catalog],
                "item_id": [e.item_id for e in catalog],
                "category": pa.array([e.category for e in catalog], pa.string()),
                "price": pa.array([e.price for e in catalog], pa.float64()),
                "stock_level": pa.array([e.stock_level for e in catalog], pa.int64()),
                "event_date": [DAY] * len(catalog),
            }
        ),
        # the catalog snapshot as spark_jobs.gold builds it: the latest non-null category
        "gold/catalog": pa.table({"item_id": ["i1", "i2"], "category": ["shoes", "hats"]}),
    }
    for name, table in tables.items():
        partitions = list(TABLES[name]) or None
        write_deltalake(str(settings.table_path(name)), table, partition_by=partitions)


@pytest.fixture(scope="module")
def feature_lake(spark, tmp_path_factory):
    settings = Settings.from_env(var_dir=tmp_path_factory.mktemp("features"))
    _write_silver(settings)
    return settings, build_feature_tables(spark, settings)


@pytest.mark.parametrize("view", FEATURE_VIEWS, ids=lambda v: v.name)
def test_last_row_per_key_is_the_fold(spark, feature_lake, view) -> None:
    settings, result = feature_lake
    assert not result.skipped
    table = feature_table(settings, view).to_arrow()
    assert table.column_names == [view.entity, "event_timestamp", *view.feature_names]

    by_key: dict[str, list[FeatureEvent]] = defaultdict(list)
    for event in _expected_events():
        key = view.key_of(event)
        if key is not None:
            by_key[key].append(event)
    rows: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(table.to_pylist(), key=lambda r: (r[view.entity], r["event_timestamp"])):
        rows[row[view.entity]].append(row)

    assert set(rows) == set(by_key)
    for key, events in by_key.items():
        ordered = sorted(events, key=lambda e: (e.event_time_ms, e.event_id))
        last = rows[key][-1]
        assert {n: last[n] for n in view.feature_names} == view.fold(ordered), key
        stamps = [r["event_timestamp"] for r in rows[key]]
        assert stamps == sorted(set(stamps)), key  # strictly increasing per key
        assert int(stamps[-1].timestamp() * 1000) == ordered[-1].event_time_ms
        # one row per distinct event instant, each the fold of the events up to it
        assert len(rows[key]) == len({e.event_time_ms for e in events})
        expected = fold_history(view, key, events)
        assert [{n: r[n] for n in view.feature_names} for r in rows[key]] == [
            {n: r[n] for n in view.feature_names} for r in expected
        ]


def test_spot_values(feature_lake) -> None:
    settings, _ = feature_lake
    by_view = {v.name: feature_table(settings, v).to_arrow().to_pylist() for v in FEATURE_VIEWS}
    s1 = max(
        (r for r in by_view["session_activity"] if r["session_id"] == "s1"),
        key=lambda r: r["event_timestamp"],
    )
    assert (s1["session_events"], s1["session_purchases"], s1["session_is_anonymous"]) == (
        4,
        1,
        False,
    )
    i2 = max(
        (r for r in by_view["item_activity"] if r["item_id"] == "i2"),
        key=lambda r: r["event_timestamp"],
    )
    assert i2["item_is_sold_out"] is True and i2["item_category"] == "hats"


def test_rerun_is_skipped(spark, feature_lake) -> None:
    settings, first = feature_lake
    again = build_feature_tables(spark, settings)
    assert again.skipped
    assert {n: r.version for n, r in again.results.items()} == {
        n: r.version for n, r in first.results.items()
    }
