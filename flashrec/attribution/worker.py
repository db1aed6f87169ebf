"""The attribution worker: impressions and events in, exact per-test counters out.

Last-touch attribution: a click, cart or purchase of item X by a shopper counts for the
latest *served* impression of that shopper that showed X at most ``window_s`` earlier.
Shadow impressions are never credited (nobody saw them).

WHY it survives restarts without losing or double counting anything:
- It reads the event log through its own consumer group (Redis Streams or Kafka, the
  ``EventLog`` interface) and the impression stream through its own group; nothing is
  acknowledged before its effects are committed, so a crash means "redo", never "lost".
- Its state lives in Redis, not in the process: each shopper's recent impressions are a
  bounded list that expires with the window (``keys.attribution_impressions``).
- Impressions: their effects and their XACK are one MULTI/EXEC, so each counts once.
- Events: their effects and the event ids (into a 10-minute "seen" set) are one MULTI/EXEC,
  acknowledged after; a replayed event found in "seen" changes nothing. This holds for
  either backend, since it does not rely on the log's acknowledgement being atomic.

Counters: per test stage and arm (``flashrec.adaptivity.test_counters``) while a canary
runs, for impressions from the arm's pinned model version; and per variant overall
(``keys.ab_stats``: impressions, clicks, carts, purchases, revenue), for dashboards and
the drift report's online decay.

Events are held back ``hold_ms`` after they reached the log before they are attributed:
the read API flushes its impressions every ~100 ms, so an event may overtake the
impression of the list its shopper was looking at.

Why one module of ~380 lines: one consumer with exactly-once bookkeeping across two streams:
the seen-set, impressions and counters must change in the same transactions.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
import redis

from flashrec.adaptivity import test_counters
from flashrec.adaptivity.rollout import CANARY, RolloutState
from flashrec.adaptivity.rollout_store import read_state
from flashrec.eventlog.base import EventLog, LogRecord
from flashrec.serving import keys
from flashrec.serving.cache import parse_impression
from flashrec.serving.policy import Impression
from flashrec.supervised_loop import run_until_stopped

log = logging.getLogger("flashrec.attribution")

GROUP = "attribution"
ATTRIBUTED = {"click": "clicks", "add_to_cart": "carts", "purchase": "purchases"}
SEEN_BUCKET_MS = 600_000
PER_SHOPPER = 20


def status_key() -> str:
    return f"{keys.PREFIX}attribution:status"


@dataclass(frozen=True)
class AttributionConfig:
    group: str = GROUP
    consumer: str = "attribution-1"
    window_s: int = 1800
    batch: int = 2000
    block_ms: int = 200
    hold_ms: int = 500
    clock_skew_ms: int = 5000  # an event stamped this much before its impression still counts


@dataclass
class AttributionStats:
    impressions: int = 0
    impressions_in_test: int = 0
    events: int = 0
    attributed: int = 0
    replayed: int = 0
    bad_payloads: int = 0
    errors: int = 0
    last_step_ms: int = 0
    last_error: str = ""


@dataclass(frozen=True)
class Served:
    """One served impression as kept in the shopper's list (compact JSON)."""

    ts_ms: int
    variant: str
    model_version: str
    counters_key: str  # "" when no test stage counted it
    items: tuple[str, ...]

    def dumps(self) -> str:
        return json.dumps(
            [self.ts_ms, self.variant, self.model_version, self.counters_key, list(self.items)],
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, raw: bytes | str) -> Served | None:
        try:
            ts, variant, version, counters_key, items = json.loads(raw)
            return cls(int(ts), str(variant), str(version), str(counters_key), tuple(items))
        except (ValueError, TypeError):
            return None


def test_arm(state: RolloutState | None, imp: Impression) -> str | None:
    """The counters key an impression counts for: a canary arm served by its pinned
    version since the canary began (None otherwise)."""
    if state is None or state.stage != CANARY or state.counters_key is None:
        return None
    if state.pins().get(imp.variant) != imp.model_version or imp.ts_ms < state.stage_started_ms:
        return None
    return state.counters_key


def event_time_ms(event: Mapping[str, Any]) -> int:
    try:
        raw = str(event.get("event_time")).replace("Z", "+00:00")
        return int(datetime.fromisoformat(raw).timestamp() * 1000)
    except ValueError:
        return 0


def best_impression(
    served: Iterable[Served], item: str, ts_ms: int, window_ms: int, skew_ms: int
) -> Served | None:
    """The latest impression showing ``item`` within the window before ``ts_ms``."""
    best = None
    for imp in served:
        in_window = item in imp.items and -skew_ms <= ts_ms - imp.ts_ms <= window_ms
        if in_window and (best is None or imp.ts_ms > best.ts_ms):
            best = imp
    return best


class AttributionWorker:
    def __init__(
        self,
        client: redis.Redis,
        event_log: EventLog,
        config: AttributionConfig | None = None,
        *,
        rollout_state: Any = None,
    ) -> None:
        self.client = client
        self.log = event_log
        self.config = config or AttributionConfig()
        self.rollout_state = rollout_state or (lambda: read_state(client))
        self.stats = AttributionStats()
        self._state: RolloutState | None = None
        self._started = False

    # -- start-up --------------------------------------------------------------------------

    def start(self) -> None:
        """Create both groups, then redo what this consumer took and never acknowledged."""
        cfg = self.config
        self.log.ensure_group(cfg.group, start="latest")
        try:
            self.client.xgroup_create(keys.IMPRESSIONS, cfg.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._state = self.rollout_state()
        while True:
            pending = self.client.xreadgroup(
                cfg.group, cfg.consumer, {keys.IMPRESSIONS: "0"}, count=cfg.batch
            )
            entries = pending[0][1] if pending else []
            if not entries:
                break
            self._impressions(entries)
        while True:
            recs = self.log.read_pending(cfg.group, cfg.consumer, cfg.batch)
            if not recs:
                break
            self._events(recs)
        self._started = True

    # -- one step --------------------------------------------------------------------------

    def step(self) -> int:
        """Drain impressions, take a batch of events, let impressions catch up, attribute.
        Returns the number of events handled."""
        if not self._started:
            self.start()
        self._state = self.rollout_state()
        self.drain_impressions()
        recs = self.log.read_group(
            self.config.group, self.config.consumer, self.config.batch, self.config.block_ms
        )
        if recs:
            newest = max(_arrival_ms(r.id) for r in recs)
            wait = newest + self.config.hold_ms - _now_ms()
            if wait > 0:
                time.sleep(min(wait, self.config.hold_ms) / 1000)
            self.drain_impressions()
            self._events(recs)
        self.stats.last_step_ms = _now_ms()
        self._publish()
        return len(recs)

    def drain_impressions(self) -> int:
        total = 0
        while True:
            got = self.client.xreadgroup(
                self.config.group,
                self.config.consumer,
                {keys.IMPRESSIONS: ">"},
                count=self.config.batch,
            )
            entries = got[0][1] if got else []
            if not entries:
                return total
            total += self._impressions(entries)
            if len(entries) < self.config.batch:
                return total

    def _impressions(self, entries: Sequence[tuple[Any, Mapping[Any, Any]]]) -> int:
        """Remember served impressions per shopper, count them; XACK in the same MULTI."""
        cfg = self.config
        window_s = cfg.window_s
        pipe = self.client.pipeline(transaction=True)
        counted = 0
        for _, fields in entries:
            imp = parse_impression(fields)
            if imp is None or not imp.served:
                continue
            arm_key = test_arm(self._state, imp)
            served = Served(imp.ts_ms, imp.variant, imp.model_version, arm_key or "", imp.items)
            key = keys.attribution_impressions(imp.shopper)
            pipe.rpush(key, served.dumps())
            pipe.ltrim(key, -PER_SHOPPER, -1)
            pipe.expire(key, window_s)
            pipe.hincrby(keys.ab_stats(imp.variant), "impressions", 1)
            if arm_key is not None:
                test_counters.add(pipe, arm_key, imp.variant, {"impressions": 1})
                pipe.sadd(keys.ab_test_shoppers(arm_key, imp.variant), imp.shopper)
                pipe.expire(
                    keys.ab_test_shoppers(arm_key, imp.variant), test_counters.COUNTER_TTL_S
                )
                self.stats.impressions_in_test += 1
            counted += 1
        pipe.xack(keys.IMPRESSIONS, cfg.group, *[entry_id for entry_id, _ in entries])
        pipe.execute()
        self.stats.impressions += counted
        return counted

    def _events(self, records: Sequence[LogRecord]) -> None:
        """Credit attributed events once (the seen set and the counters in one MULTI)."""
        cfg = self.config
        parsed: list[tuple[str, dict[str, Any]]] = []
        for rec in records:
            event = _event_of(rec.payload)
            if event is None:
                self.stats.bad_payloads += 1
                continue
            if event.get("event_type") in ATTRIBUTED and event.get("event_id"):
                parsed.append((rec.id, event))
        self.stats.events += len(records)
        if parsed:
            self._credit(parsed)
        self.log.ack(cfg.group, [r.id for r in records])

    def _credit(self, parsed: list[tuple[str, dict[str, Any]]]) -> None:
        cfg = self.config
        buckets = [event_time_ms(e) // SEEN_BUCKET_MS for _, e in parsed]
        pipe = self.client.pipeline(transaction=False)
        for (_, event), bucket in zip(parsed, buckets, strict=True):
            pipe.sismember(keys.attribution_seen(bucket), str(event["event_id"]))
        seen = pipe.execute()
        fresh = [(p, b) for p, b, s in zip(parsed, buckets, seen, strict=True) if not s]
        self.stats.replayed += len(parsed) - len(fresh)
        if not fresh:
            return
        refs = sorted({r for (_, e), _ in fresh for r in _shopper_refs(e)})
        pipe = self.client.pipeline(transaction=False)
        for ref in refs:
            pipe.lrange(keys.attribution_impressions(ref), 0, -1)
        recent = {
            ref: [s for raw in rows if (s := Served.loads(raw)) is not None]
            for ref, rows in zip(refs, pipe.execute(), strict=True)
        }
        tx = self.client.pipeline(transaction=True)
        window_ms = cfg.window_s * 1000
        for (_, event), bucket in fresh:
            seen_key = keys.attribution_seen(bucket)
            tx.sadd(seen_key, str(event["event_id"]))
            tx.expire(seen_key, 2 * cfg.window_s + SEEN_BUCKET_MS // 1000)
            item, ts = str(event.get("item_id")), event_time_ms(event)
            found = [
                (ref, b)
                for ref in _shopper_refs(event)
                if (
                    b := best_impression(
                        recent.get(ref, ()), item, ts, window_ms, cfg.clock_skew_ms
                    )
                )
            ]
            if not found:
                continue
            shopper, best = max(found, key=lambda rb: rb[1].ts_ms)
            name = ATTRIBUTED[str(event["event_type"])]
            fields: dict[str, int | float] = {name: 1}
            if name == "purchases":
                fields["revenue"] = float(event.get("price") or 0.0) * int(
                    event.get("quantity") or 1
                )
            for field_name, value in fields.items():
                if isinstance(value, float):
                    tx.hincrbyfloat(keys.ab_stats(best.variant), field_name, value)
                else:
                    tx.hincrby(keys.ab_stats(best.variant), field_name, value)
            if best.counters_key:
                test_counters.add(tx, best.counters_key, best.variant, fields)
                if name == "purchases":
                    conv = keys.ab_test_converters(best.counters_key, best.variant)
                    tx.sadd(conv, shopper)
                    tx.expire(conv, test_counters.COUNTER_TTL_S)
            self.stats.attributed += 1
        tx.execute()

    def _publish(self) -> None:
        fields = {k: str(v) for k, v in asdict(self.stats).items()}
        self.client.hset(status_key(), mapping=fields)

    # -- the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Loop until ``stop``; Redis outages and poison records are waited out/logged."""
        run_until_stopped(
            self.step, stop or threading.Event(),
            on_redis_error=self._redis_lost, on_error=self._step_failed,
        )  # fmt: skip

    def _redis_lost(self, exc: BaseException) -> None:
        self.stats.errors += 1
        self.stats.last_error = f"redis: {exc}"[:300]
        log.warning("Redis unreachable, retrying: %s", exc)
        self._started = False

    def _step_failed(self, exc: Exception) -> None:
        self.stats.errors += 1
        self.stats.last_error = repr(exc)[:300]
        log.exception("attribution step failed; retrying")
        self._started = False


def _event_of(payload: str) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) and "event_type" in doc else None


def _shopper_refs(event: Mapping[str, Any]) -> list[str]:
    """``u:<user>`` first (a purchase converts the user), then ``s:<session>``."""
    refs = []
    if event.get("user_id"):
        refs.append(keys.shopper_ref("u", str(event["user_id"])))
    if event.get("session_id"):
        refs.append(keys.shopper_ref("s", str(event["session_id"])))
    return refs


def _arrival_ms(record_id: str) -> int:
    """A Redis stream id starts with its append time; other logs: now (no hold-back)."""
    head = record_id.partition("-")[0]
    return int(head) if head.isdigit() and len(head) >= 12 else 0


def _now_ms() -> int:
    return int(time.time() * 1000)
