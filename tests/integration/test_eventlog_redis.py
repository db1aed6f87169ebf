"""The Redis Streams event log against a real redis-server (database 15)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
import redis

from flashrec.eventlog import DeadLetter, EventLog, LogRecord, RetentionPolicy
from flashrec.eventlog.redis_streams import RedisStreamsEventLog
from flashrec.events import Rejection, parse_event

pytestmark = pytest.mark.integration


@pytest.fixture()
def eventlog(redis_url: str):
    name = f"test:events:{uuid.uuid4().hex[:8]}"
    log = RedisStreamsEventLog(
        redis_url, name, f"{name}:dlq", retention=RetentionPolicy(max_len=10_000)
    )
    yield log
    raw = redis.Redis.from_url(redis_url)
    raw.delete(log.stream, log.deadletter_stream)
    raw.close()
    log.close()


def _payloads(n: int, start: int = 0) -> list[str]:
    return [json.dumps({"n": i}) for i in range(start, start + n)]


def test_is_an_event_log(eventlog):
    assert isinstance(eventlog, EventLog)


def test_append_read_ack_pending_lag(eventlog):
    ids = eventlog.append(_payloads(250))
    assert len(ids) == 250 and len(set(ids)) == 250
    assert eventlog.length() == 250

    assert eventlog.ensure_group("features") is True
    assert eventlog.lag("features") == 250 and eventlog.pending("features") == 0

    first = eventlog.read_group("features", "c1", count=100)
    assert [r.id for r in first] == ids[:100]
    assert first[0] == LogRecord(ids[0], json.dumps({"n": 0}))
    assert eventlog.pending("features") == 100
    assert eventlog.lag("features") == 150

    # Another consumer of the same group gets the next records, not the same ones.
    second = eventlog.read_group("features", "c2", count=1000)
    assert [r.id for r in second] == ids[100:]
    assert eventlog.lag("features") == 0 and eventlog.pending("features") == 250

    assert eventlog.ack("features", [r.id for r in first]) == 100
    assert eventlog.ack("features", [r.id for r in first]) == 0  # acking twice is harmless
    health = eventlog.health("features")
    assert (health.pending, health.lag, health.consumers) == (150, 0, 2)
    assert health.last_delivered_id == ids[-1]

    # c2 "crashes": its unacked records come back to it, in order, until acked.
    assert [r.id for r in eventlog.read_pending("features", "c2", count=1000)] == ids[100:]
    eventlog.ack("features", ids[100:])
    assert eventlog.read_pending("features", "c2") == []
    assert eventlog.pending("features") == 0

    # Nothing new: a blocking read waits, then returns nothing.
    assert eventlog.read_group("features", "c1", count=10, block_ms=50) == []
    # Groups are independent.
    assert len(eventlog.read_group("audit", "a1", count=1000)) == 250


def test_group_creation_is_idempotent(eventlog):
    assert eventlog.ensure_group("g") is True
    assert eventlog.ensure_group("g") is False
    assert eventlog.ensure_group("g", start="latest") is False  # an existing group keeps its place
    eventlog.append(_payloads(3))
    assert len(eventlog.read_group("g", "c", count=10)) == 3
    # A "latest" group only sees what comes after it.
    assert eventlog.ensure_group("late", start="latest") is True
    new_ids = eventlog.append(_payloads(2, start=3))
    assert [r.id for r in eventlog.read_group("late", "c", count=10)] == new_ids
    with pytest.raises(ValueError):
        eventlog.ensure_group("x", start="middle")


def test_dead_letters_keep_reason_field_and_raw(eventlog):
    bad = (
        '{"event_type": "purchase", "event_id": "e1", "item_id": "i1",'
        ' "session_id": "s1", "event_time": "2026-11-24T10:00:00Z"}'
    )
    rejection = parse_event(bad)
    assert isinstance(rejection, Rejection)
    when = datetime(2026, 11, 24, 10, 0, 1, tzinfo=UTC)
    ids = eventlog.append_dead_letters(
        [
            DeadLetter.from_rejection(rejection, source="gateway", time=when),
            DeadLetter(reason="payload: not valid JSON", raw="{oops\t\u00e9", source="flink"),
        ]
    )
    assert len(ids) == 2
    letters = eventlog.dead_letters()
    assert [d.id for d in letters] == ids
    first, second = letters
    assert first.reason == rejection.reason and "price" in first.reason
    assert first.field == "price"
    assert first.raw == bad
    assert (first.source, first.time) == ("gateway", when)
    assert second.raw == "{oops\t\u00e9" and second.field is None and second.source == "flink"
    assert eventlog.length() == 0  # dead letters live in their own stream


def test_bounded_length_trimming(redis_url):
    name = f"test:events:{uuid.uuid4().hex[:8]}"
    log = RedisStreamsEventLog(
        redis_url, name, f"{name}:dlq", retention=RetentionPolicy(max_len=1000), batch_size=500
    )
    try:
        ids = log.append(_payloads(5000))
        # Approximate trimming keeps at least max_len and at most about one node (100) more.
        assert 1000 <= log.length() <= 1100
        # The newest entries are the ones kept.
        log.ensure_group("g")
        kept = log.read_group("g", "c", count=5000)
        assert kept[-1].id == ids[-1] and [r.id for r in kept] == ids[-len(kept) :]
        # Exact trim on demand.
        removed = log.trim(500, approximate=False)
        assert log.length() == 500 and removed == len(kept) - 500
        # Pending entries trimmed away are reported and acknowledged, not returned as records.
        assert log.pending("g") == len(kept)
        assert len(log.read_pending("g", "c", count=5000)) == 500
        assert log.pending("g") == 500
    finally:
        redis.Redis.from_url(redis_url).delete(name, f"{name}:dlq")
        log.close()


def test_entry_without_payload_field_is_not_dropped(eventlog, redis_url):
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    entry_id = raw.xadd(eventlog.stream, {"event_id": "e9", "item_id": "i9"})
    raw.close()
    (record,) = eventlog.read_group("g", "c")
    assert record.id == entry_id
    assert json.loads(record.payload) == {"event_id": "e9", "item_id": "i9"}


def test_from_settings_uses_stream_names(redis_url):
    from flashrec.settings import Settings

    settings = Settings.from_env(
        redis_url=redis_url, events_stream="test:s:ev", deadletter_stream="test:s:dl"
    )
    log = RedisStreamsEventLog.from_settings(settings)
    try:
        assert (log.stream, log.deadletter_stream) == ("test:s:ev", "test:s:dl")
        assert log.retention.max_len == getattr(settings, "events_maxlen", 1_000_000)
    finally:
        log.close()
