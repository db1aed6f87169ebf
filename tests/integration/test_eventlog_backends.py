"""One contract, two backends: the same tests against Redis Streams and Kafka (tansu broker)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from flashrec.eventlog import DeadLetter, EventLog, RetentionPolicy
from flashrec.eventlog.kafka import KafkaEventLog
from flashrec.eventlog.redis_streams import RedisStreamsEventLog
from flashrec.events import parse_event
from tests.kafka_broker import TANSU_CONSUMER, TANSU_PRODUCER

pytestmark = pytest.mark.integration

LogFactory = Callable[[], EventLog]


@pytest.fixture(params=["redis", "kafka"])
def make_log(request, redis_url: str) -> Iterator[LogFactory]:
    """A factory: every call opens a NEW client on the same log (a restarted consumer)."""
    name = f"test.events.{uuid.uuid4().hex[:8]}"
    opened: list[EventLog] = []
    if request.param == "redis":

        def factory() -> EventLog:
            log = RedisStreamsEventLog(
                redis_url, name, f"{name}.dlq", retention=RetentionPolicy(10_000)
            )
            opened.append(log)
            return log
    else:
        bootstrap = request.getfixturevalue("kafka_bootstrap")

        def factory() -> EventLog:
            log = KafkaEventLog(
                bootstrap,
                name,
                f"{name}.dlq",
                partitions=1,
                producer_config=TANSU_PRODUCER,
                consumer_config=TANSU_CONSUMER,
            )
            opened.append(log)
            return log

    yield factory
    for log in opened:
        log.close()
    if request.param == "redis":
        client = redis.Redis.from_url(redis_url)
        client.delete(name, f"{name}.dlq")
        client.close()


def _payloads(n: int, start: int = 0) -> list[str]:
    return [json.dumps({"n": i, "item_id": f"i{i % 7}"}) for i in range(start, start + n)]


def _drain(log: EventLog, group: str, consumer: str, expected: int) -> list:
    got: list = []
    for _ in range(50 if expected > 0 else 0):
        batch = log.read_group(group, consumer, count=expected - len(got), block_ms=200)
        got.extend(batch)
        if len(got) >= expected:
            break
    return got


def test_append_read_ack(make_log):
    log = make_log()
    ids = log.append(_payloads(120))
    assert len(ids) == 120 and len(set(ids)) == 120
    assert log.length() == 120

    assert log.ensure_group("features") is True
    assert log.ensure_group("features") is False
    assert log.lag("features") == 120 and log.pending("features") == 0

    first = _drain(log, "features", "c1", 50)
    assert [r.id for r in first] == ids[:50]
    assert json.loads(first[0].payload)["n"] == 0
    assert log.pending("features") == 50 and log.lag("features") == 70

    rest = _drain(log, "features", "c1", 70)
    assert [r.id for r in rest] == ids[50:]
    assert log.lag("features") == 0 and log.pending("features") == 120

    assert log.ack("features", [r.id for r in first]) == 50
    assert log.ack("features", [r.id for r in first]) == 0  # acking twice is harmless
    health = log.health("features")
    assert (health.pending, health.lag) == (70, 0)
    assert health.consumers >= 1 and health.last_delivered_id is not None
    assert [r.id for r in log.read_pending("features", "c1", count=1000)] == ids[50:]
    assert log.ack("features", ids[50:]) == 70
    assert log.pending("features") == 0 and log.read_pending("features", "c1") == []

    # Nothing new: a blocking read waits, then returns nothing; new records then arrive.
    assert log.read_group("features", "c1", count=10, block_ms=100) == []
    more = log.append(_payloads(5, start=120))
    assert [r.id for r in _drain(log, "features", "c1", 5)] == more


def test_unacked_records_come_back_after_a_consumer_restart(make_log):
    log = make_log()
    ids = log.append(_payloads(30))
    log.ensure_group("lake")
    got = _drain(log, "lake", "worker", 30)
    assert len(got) == 30
    log.ack("lake", [r.id for r in got[:10]])  # processed 10, then "crashes"
    log.close()

    restarted = make_log()
    # Redis hands them back as the consumer's pending list, Kafka from the committed offset.
    back = restarted.read_pending("lake", "worker", count=100)
    back += _drain(restarted, "lake", "worker", 20 - len(back))
    assert [r.id for r in back] == ids[10:]
    assert restarted.ack("lake", [r.id for r in back]) == 20
    assert restarted.pending("lake") == 0 and restarted.lag("lake") == 0
    # Nothing acked is delivered again.
    assert restarted.read_group("lake", "worker", count=10, block_ms=100) == []


def test_dead_letters_keep_reason_and_raw(make_log):
    log = make_log()
    raws = ['{"event_type": "view", "price": -1}', "not json {", "x" * 50]
    letters = []
    for raw in raws:
        rejection = parse_event(raw, max_bytes=40)
        assert not hasattr(rejection, "event_id")
        letters.append(DeadLetter.from_rejection(rejection, source="test"))
    ids = log.append_dead_letters(letters)
    assert len(ids) == 3
    back = log.dead_letters(count=10)
    assert [d.raw for d in back] == [raws[0], raws[1], "x" * 40]
    assert [d.source for d in back] == ["test"] * 3
    assert back[1].reason.startswith("payload: not valid JSON") and back[1].field == "payload"
    assert "event_id" in back[0].reason
    assert back[2].reason == "payload: larger than 40 bytes"
    assert [d.id for d in back] == ids
    assert [d.raw for d in log.dead_letters(count=2)] == [raws[1], "x" * 40]
    assert log.length() == 0  # dead letters never land in the event log


def test_lag_and_health_of_independent_groups(make_log):
    log = make_log()
    log.append(_payloads(40))
    log.ensure_group("a")
    log.ensure_group("b", start="latest")
    assert log.lag("a") == 40 and log.lag("b") == 0
    got = _drain(log, "a", "a1", 40)
    log.ack("a", [r.id for r in got[:25]])
    health = log.health("a")
    assert (health.pending, health.lag) == (15, 0)
    log.append(_payloads(3, start=40))
    assert log.lag("a") == 3
    # Redis cannot count entries for a group created at "$" (XINFO reports no lag): None.
    assert log.lag("b") in (3, None)
    assert [json.loads(r.payload)["n"] for r in _drain(log, "b", "b1", 3)] == [40, 41, 42]
