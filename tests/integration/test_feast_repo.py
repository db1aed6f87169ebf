"""Feast over our Delta feature tables: point-in-time joins (duckdb), Redis online store.

The Delta tables are hand-made here with delta-rs (the Spark job that writes them in
production is tested in test_spark_features.py); Feast, duckdb and Redis are all real.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from flashrec import features as shared
from flashrec.settings import Settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ARROW = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(), "bool": pa.bool_()}
DEFAULTS = {"int64": 0, "float64": 0.0, "string": "", "bool": False}


def _write_view(settings: Settings, view: shared.FeatureView, rows: list[dict]) -> None:
    """Write a feature table the way spark_jobs.features lays it out (key, time, features)."""
    from feature_repo.definitions import feature_table_name

    schema = pa.schema(
        [
            (view.entity, pa.string()),
            ("event_timestamp", pa.timestamp("us", tz="UTC")),
            *[(spec.name, ARROW[spec.dtype]) for spec in view.features],
        ]
    )
    full = [{spec.name: DEFAULTS[spec.dtype] for spec in view.features} | row for row in rows]
    table = pa.Table.from_pylist(full, schema=schema)
    write_deltalake(str(settings.table_path(feature_table_name(view.name))), table)


@pytest.fixture(scope="module")
def store(tmp_path_factory, redis_url):
    from feature_repo.store import apply_definitions, feature_store

    settings = Settings.from_env(var_dir=tmp_path_factory.mktemp("feast"), redis_url=redis_url)
    h = timedelta(hours=1)
    _write_view(
        settings,
        shared.USER,
        [
            {"user_id": "u1", "event_timestamp": T0, "user_purchases_total": 1},
            {
                "user_id": "u1",
                "event_timestamp": T0 + 2 * h,
                "user_purchases_total": 2,
                "user_top_category": "shoes",
            },
            {"user_id": "u2", "event_timestamp": T0 + h, "user_purchases_total": 7},
        ],
    )
    _write_view(
        settings,
        shared.SESSION,
        [
            {"session_id": "s1", "event_timestamp": T0, "session_events": 1},
            {
                "session_id": "s1",
                "event_timestamp": T0 + h,
                "session_events": 5,
                "session_is_anonymous": True,
            },
        ],
    )
    _write_view(
        settings,
        shared.ITEM,
        [
            {"item_id": "i1", "event_timestamp": T0 - h, "item_price": 9.5, "item_stock_level": 3},
            {
                "item_id": "i1",
                "event_timestamp": T0 + 3 * h,
                "item_price": 8.0,
                "item_stock_level": 0,
                "item_is_sold_out": True,
            },
        ],
    )
    fs = feature_store(settings)
    apply_definitions(fs)
    apply_definitions(fs)  # idempotent
    return fs


def test_registry_mirrors_shared_definitions(store) -> None:
    views = {v.name: v for v in store.list_feature_views()}
    assert set(views) == {v.name for v in shared.FEATURE_VIEWS}
    for view in shared.FEATURE_VIEWS:
        fv = views[view.name]
        assert fv.entity_columns[0].name == view.entity
        assert [f.name for f in fv.features] == view.feature_names
        assert fv.stream_source is not None and fv.stream_source.name == f"{view.name}_push"
    service = store.get_feature_service("ranker_v1")
    assert {p.name for p in service.feature_view_projections} == set(views)


def test_point_in_time_join(store) -> None:
    h = timedelta(hours=1)
    rows = [
        # (user, session, item, timestamp) -> expected (purchases, session_events, price)
        ("u1", "s1", "i1", T0 - 2 * h, (None, None, None)),  # before every first value
        ("u1", "s1", "i1", T0, (1, 1, 9.5)),  # exactly at the values' timestamps
        ("u1", "s1", "i1", T0 + h + timedelta(minutes=30), (1, 5, 9.5)),
        ("u1", "s1", "i1", T0 + 2 * h, (2, 5, 9.5)),  # exact, a later value of u1
        ("u1", "s1", "i1", T0 + 3 * h, (2, 5, 8.0)),
        ("u2", "s1", "i1", T0 + 23 * h, (7, 5, 8.0)),  # session still within its 1 day
        ("u2", "s1", "i1", T0 + 26 * h, (7, None, 8.0)),  # session ttl (1 day) passed
        ("u1", "s2", "i1", T0 + 2 * h + timedelta(days=2, minutes=1), (None, None, 8.0)),
        ("u3", "s1", "i2", T0 + h, (None, 5, None)),  # unknown keys
    ]
    entity_df = pd.DataFrame(
        [
            {"user_id": u, "session_id": s, "item_id": i, "event_timestamp": t}
            for u, s, i, t, _ in rows
        ]
    )
    entity_df["row"] = range(len(rows))
    result = (
        store.get_historical_features(
            entity_df=entity_df, features=store.get_feature_service("ranker_v1")
        )
        .to_df()
        .sort_values("row")
    )
    assert len(result) == len(rows)
    every = [name for view in shared.FEATURE_VIEWS for name in view.feature_names]
    assert set(every) <= set(result.columns)

    def clean(value):
        return None if pd.isna(value) else value

    got = [
        (clean(r.user_purchases_total), clean(r.session_events), clean(r.item_price))
        for r in result.itertuples()
    ]
    assert got == [expected for *_, expected in rows]
    at_4 = result.iloc[4]
    assert at_4["user_top_category"] == "shoes" and bool(at_4["item_is_sold_out"]) is True


def test_materialize_then_read_online(store) -> None:
    from feature_repo.store import read_online

    store.materialize(start_date=T0 - timedelta(days=1), end_date=T0 + timedelta(hours=4))
    users = read_online(store, "user_activity", ["u1", "u2", "nobody"])
    assert [u["user_purchases_total"] for u in users] == [2, 7, None]
    assert users[0]["user_top_category"] == "shoes"
    items = read_online(store, "item_activity", ["i1"])
    assert items[0]["item_price"] == 8.0 and items[0]["item_is_sold_out"] is True


def _session_rows(n_rows: int) -> list[dict]:
    """Complete ``session_activity`` rows ``live-<n>`` (every feature set, ``n`` each)."""
    now = datetime.now(UTC)
    return [
        {
            "session_id": f"live-{n}",
            "event_timestamp": now,
            "session_events": n,
            "session_last_item": f"i{n}",
            "session_is_anonymous": n % 2 == 0,
            "session_recent_items": "[]",
        }
        | {
            name: n
            for name in (
                "session_views",
                "session_clicks",
                "session_carts",
                "session_purchases",
                "session_distinct_items",
                "session_duration_s",
            )
        }
        for n in range(n_rows)
    ]


def test_write_online_round_trip(store) -> None:
    from feature_repo.store import read_online, write_online

    rows = _session_rows(50)
    write_online(store, "session_activity", rows)
    got = read_online(store, "session_activity", ["live-3", "live-4", "missing"])
    assert got[0]["session_events"] == 3 and got[0]["session_last_item"] == "i3"
    assert got[0]["session_is_anonymous"] is False and got[1]["session_is_anonymous"] is True
    assert got[2]["session_events"] is None


def _redis_hashes(store, keys: list[bytes]) -> dict[bytes, dict[bytes, bytes]]:
    import redis

    client = redis.Redis.from_url(store.settings.redis_url)
    try:
        return {key: client.hgetall(key) for key in keys}
    finally:
        client.close()


@pytest.mark.parametrize("view", shared.FEATURE_VIEWS, ids=lambda v: v.name)
def test_online_writer_writes_what_the_sdk_writes(store, view) -> None:
    """The stream job's fast path leaves byte-identical Redis hashes (None values too)."""
    import redis

    from feature_repo.store import OnlineWriter, read_online, write_online

    samples = {"int64": 41, "float64": 2.5, "string": '["i1"]', "bool": True}
    stamp = datetime(2026, 11, 24, 3, 4, 5, 678000, tzinfo=UTC)
    store.config.online_store.skip_dedup = True

    def rows(prefix: str) -> list[dict]:
        return [
            {view.entity: f"{prefix}-{n}", "event_timestamp": stamp}
            | {s.name: None if n == 1 else samples[s.dtype] for s in view.features}
            for n in range(3)
        ]

    client = redis.Redis.from_url(store.settings.redis_url)
    before = set(client.keys("*"))
    write_online(store, view.name, rows("sdk"))
    sdk_keys = sorted(set(client.keys("*")) - before)
    OnlineWriter(store).write(view.name, rows("fast"))
    fast_keys = sorted(set(client.keys("*")) - before - set(sdk_keys))
    client.close()
    assert len(sdk_keys) == len(fast_keys) == 3
    sdk, fast = _redis_hashes(store, sdk_keys), _redis_hashes(store, fast_keys)
    # the keys differ only by the entity value; the hashes must be the same bytes
    assert sorted(map(sorted, (h.items() for h in sdk.values()))) == sorted(
        map(sorted, (h.items() for h in fast.values()))
    )
    got = read_online(store, view.name, [f"fast-{n}" for n in range(3)])
    assert got[0][view.features[0].name] == samples[view.features[0].dtype]
    assert all(got[1][s.name] is None for s in view.features)


def test_online_keys_expire_after_the_configured_ttl(store) -> None:
    """FLASHREC_FEAST_KEY_TTL_S: every write through the stream job's path re-arms the
    entity key's expiry, so shoppers and sessions nobody touches leave Redis."""
    import redis

    from feature_repo.store import OnlineWriter

    assert store.config.online_store.key_ttl_seconds == store.settings.feast_key_ttl_s > 0
    client = redis.Redis.from_url(store.settings.redis_url)
    before = set(client.keys("*"))
    row = {"session_id": "ttl-1", "event_timestamp": datetime.now(UTC), "session_events": 1}
    OnlineWriter(store).write("session_activity", [row])
    (key,) = set(client.keys("*")) - before
    ttl = client.ttl(key)
    client.close()
    assert 0 < ttl <= store.settings.feast_key_ttl_s


def test_online_store_round_trip_over_tls(tmp_path, redis_tls_url) -> None:
    """``REDIS_URL=rediss://...?ssl_ca_certs=..``: Feast's online store writes and reads
    over TLS with the options the URL names (the CA here is the test server's own)."""
    from feature_repo.store import apply_definitions, feature_store, read_online, write_online

    settings = Settings.from_env(var_dir=tmp_path / "var", redis_url=redis_tls_url)
    fs = feature_store(settings)
    apply_definitions(fs)
    write_online(fs, "session_activity", _session_rows(5))
    got = read_online(fs, "session_activity", ["live-3", "missing"])
    assert got[0]["session_events"] == 3 and got[0]["session_last_item"] == "i3"
    assert got[1]["session_events"] is None
