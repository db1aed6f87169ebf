"""Feast definitions mirror the shared feature views; config and history helpers (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flashrec.features import FEATURE_VIEWS, SESSION, FeatureEvent


def test_redis_url_to_feast_connection_string() -> None:
    from feature_repo.store import redis_connection_string

    assert redis_connection_string("redis://127.0.0.1:6379/15") == "127.0.0.1:6379,db=15"
    assert redis_connection_string("redis://redis.svc") == "redis.svc:6379,db=0"
    assert (
        redis_connection_string("rediss://:s%40cret@cache:6380/2")
        == "cache:6380,db=2,password=s@cret,ssl=true"
    )
    assert (
        redis_connection_string(
            "rediss://cache:6380/0?ssl_ca_certs=/ca.pem&ssl_check_hostname=true"
        )
        == "cache:6380,db=0,ssl=true,ssl_ca_certs=/ca.pem,ssl_check_hostname=true"
    )
    with pytest.raises(ValueError):
        redis_connection_string("http://127.0.0.1:6379")


def test_feast_views_are_the_shared_views() -> None:
    from feast import FeatureView

    from feature_repo.definitions import FEAST_TYPES, build_definitions

    objects = build_definitions(Path("/lake"))
    views = {o.name: o for o in objects if isinstance(o, FeatureView)}
    assert set(views) == {v.name for v in FEATURE_VIEWS}
    for view in FEATURE_VIEWS:
        fv = views[view.name]
        assert fv.entities == [view.entity.removesuffix("_id")]
        assert [(f.name, f.dtype) for f in fv.features] == [
            (s.name, FEAST_TYPES[s.dtype]) for s in view.features
        ]
        assert fv.batch_source.path == f"/lake/gold/features_{view.name}"
        assert fv.stream_source.batch_source.path == fv.batch_source.path


def _event(n: int, ms: int, kind: str = "view") -> FeatureEvent:
    return FeatureEvent(f"e{n}", ms, kind, f"i{n}", "u1", "s1")


def test_fold_history_keeps_the_last_row_of_each_instant() -> None:
    from spark_jobs.features import fold_history

    events = [_event(3, 2000, "purchase"), _event(1, 1000), _event(2, 2000, "click")]
    rows = fold_history(SESSION, "s1", events)
    assert [r["event_timestamp"] for r in rows] == [1000, 2000]
    assert rows[-1] | {} == {
        "session_id": "s1",
        "event_timestamp": 2000,
        **SESSION.fold(sorted(events, key=lambda e: (e.event_time_ms, e.event_id))),
    }
    assert rows[0]["session_events"] == 1
