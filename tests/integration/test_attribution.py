"""Live attribution against a real Redis: credits go to the served list's arm and model
version, per-test counters are exact and start at zero, and a crash at any point neither
loses nor double counts an event."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis

from flashrec.adaptivity import test_counters
from flashrec.adaptivity.rollout import RolloutState
from flashrec.adaptivity.rollout_store import write_state
from flashrec.attribution.worker import AttributionConfig, AttributionWorker
from flashrec.eventlog.redis_streams import RedisStreamsEventLog
from flashrec.serving import keys
from flashrec.serving.cache import impression_fields
from flashrec.serving.policy import Impression

pytestmark = pytest.mark.integration


def _event(kind: str, user: str, item: str, *, price: float = 10.0) -> str:
    return json.dumps(
        {
            "event_id": uuid.uuid4().hex,
            "event_type": kind,
            "event_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "user_id": user,
            "session_id": f"s-{user}",
            "item_id": item,
            "price": price,
            "quantity": 1,
        }
    )


@pytest.fixture
def rig(redis_url, event_log_backend, request):
    """Redis for state and impressions; the event log on each backend."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    tag = uuid.uuid4().hex[:6]
    if event_log_backend == "redis":
        log = RedisStreamsEventLog(redis_url, f"test:attr:{tag}:events", f"test:attr:{tag}:dead")
    else:
        from flashrec.eventlog.kafka import KafkaEventLog
        from tests.kafka_broker import TANSU_CONSUMER, TANSU_PRODUCER

        log = KafkaEventLog(
            request.getfixturevalue("kafka_bootstrap"),
            f"test.attr.{tag}.events",
            f"test.attr.{tag}.dead",
            partitions=1,
            producer_config=TANSU_PRODUCER,
            consumer_config=TANSU_CONSUMER,
        )
    yield client, log
    client.flushdb()
    log.close()


def _impress(client: redis.Redis, shopper: str, variant: str, version: str, items, served=True):
    imp = Impression(
        uuid.uuid4().hex, shopper, variant, version, "cache", tuple(items), served,
        int(time.time() * 1000),
    )  # fmt: skip
    client.xadd(keys.IMPRESSIONS, impression_fields(imp))


def test_credits_exact_per_test_counters_and_crash_replay(rig):
    client, log = rig
    canary = RolloutState("m1", "m2", "canary", "m2@1", int(time.time() * 1000) - 1000, 0.5)
    write_state(client, canary)
    cfg = AttributionConfig(hold_ms=0, block_ms=10)
    worker = AttributionWorker(client, log, cfg)
    worker.start()
    _impress(client, "u:1", "champion", "m1", ["a", "b"])
    _impress(client, "u:2", "challenger", "m2", ["c", "d"])
    _impress(client, "u:3", "challenger", "m-old", ["c"])  # not the pinned version
    _impress(client, "u:2", "shadowy", "m9", ["d"], served=False)  # never credited
    log.append(
        [
            _event("click", "1", "a"),
            _event("purchase", "1", "b", price=5.0),
            _event("purchase", "2", "d", price=7.0),
            _event("click", "3", "c"),  # shown by an unpinned version: global only
            _event("click", "4", "a"),  # never shown to shopper 4
            _event("view", "1", "a"),
        ]
    )
    worker.step()
    key = canary.counters_key
    champ = test_counters.read_arm(client, key, "champion", "m1")
    chall = test_counters.read_arm(client, key, "challenger", "m2")
    assert (champ.sessions, champ.impressions, champ.clicks, champ.conversions) == (1, 1, 1, 1)
    assert (chall.sessions, chall.impressions, chall.clicks, chall.conversions) == (1, 1, 0, 1)
    assert worker.stats.attributed == 4
    stats = {k.decode(): float(v) for k, v in client.hgetall(keys.ab_stats("challenger")).items()}
    assert stats["impressions"] == 2 and stats["clicks"] == 1 and stats["revenue"] == 7.0

    # A crash after the counters were committed but before the log was acknowledged: the
    # next worker takes the same events again (pending) and must not count them twice.
    log.append([_event("purchase", "1", "a", price=3.0)])
    recs = log.read_group(cfg.group, cfg.consumer, 100)
    worker._credit([(r.id, json.loads(r.payload)) for r in recs])  # committed, never acked
    again = AttributionWorker(client, log, cfg)
    again.start()  # replays its pending entries
    assert again.stats.replayed == 1
    champ = test_counters.read_arm(client, key, "champion", "m1")
    assert champ.conversions == 1  # the same shopper converts once
    raw = test_counters.read_raw(client, key, "champion")
    assert raw["purchases"] == 2 and raw["revenue"] == 8.0
    assert log.health(cfg.group).pending == 0

    # A new test starts at zero.
    write_state(client, RolloutState("m1", "m3", "canary", "m3@2", int(time.time() * 1000), 0.5))
    fresh = test_counters.read_arm(client, "m3@2:canary", "challenger", "m3")
    assert (fresh.sessions, fresh.impressions, fresh.conversions) == (0, 0, 0)
