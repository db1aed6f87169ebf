"""The features job's Flink operators: parse and route, then fold and flush per shard.

No feature logic lives here: operators call ``flashrec.events.parse_event``,
``flashrec.features.feature_event`` and each view's ``new_state``/``update``/``values``.
What is here is the plumbing only Flink can give: keyed state checkpointed together with
the source's position (a restore replays exactly the events after the checkpoint onto the
state as of the checkpoint), and timers for batched, coalesced writes.

WHY two shard-keyed stages and not one operator per view: in PyFlink every hop between
operators and every Python key selector costs tens of microseconds per record (measured
here: ~60-110 us per shuffle hop, ~25-60 us per state access). An event used to cross
eight such hops on its way to the sink; now it crosses two:

1. ``ShardFold(items)`` keyed by the item's shard: folds the item view, attaches the
   item's category (set by its ``item_created`` event) to storefront events and forwards
   them to the shoppers' shards; flushes item rows, stock and sold-out state.
2. ``ShardFold(shoppers)`` keyed by the shopper's shard: folds the user and session views;
   flushes their rows and the rescore signals.

Each stage keeps its keys' view states in MapState (one per view, one entry per key,
written on every event so that a checkpoint always holds it) and the keys changed since
the last flush in a second MapState, so that a crash after a checkpoint but before the
flush loses no write: after a restore the first flush of each shard writes the restored
changed keys too. Values are computed once per key per flush, not once per event.

Bounded state: sessions and shoppers come and go all the time, so their views' MapState
entries carry a processing-time TTL (``session_ttl_s``, ``user_ttl_s``; refreshed on every
write, never read once expired, dropped from full checkpoints and by incremental cleanup on
the heap, by the compaction filter in RocksDB); a key seen again after its TTL starts from
an empty state. The operator's own caches are bounded by size and by the same TTLs.

Order: views are order-insensitive aggregators, so events may reach a shopper's shard
from several item shards in any order. The one order that matters, an item's creation
before its first events (the category), holds because parsing runs chained to the source
and each item's events go to one item shard. With several source consumers (one consumer
group spreading entries) an item created moments before its first click can still be
seen after it; its category then comes from the catalog hash, or stays unknown.

Operators hold view *names* and resolve the views in the worker (views carry lambdas that
are better imported than pickled).

Why one module of ~420 lines: the job's two operators and their state handling; they must be
importable as one unit by the Python workers (see below).
"""

from __future__ import annotations

import gc
import logging
import sys
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from cachetools import TTLCache
from pyflink.common import Types
from pyflink.datastream import (
    FlatMapFunction,
    KeyedProcessFunction,
    KeySelector,
    RuntimeContext,
)
from pyflink.datastream.state import MapStateDescriptor, StateTtlConfig

from flashrec.events import Rejection, parse_event
from flashrec.features import FeatureEvent, FeatureView, feature_event, view_by_name
from flink_jobs import job_metrics
from flink_jobs.job_config import JobConfig
from flink_jobs.job_sinks import FeatureRecord, LiveState, flush, make_writer

log = logging.getLogger(__name__)

PICKLED = Types.PICKLED_BYTE_ARRAY()
STATE_CACHE_KEYS = 50_000  # decoded states kept per operator
CATALOG_MISSES_KEPT = 10_000  # items whose catalog lookup found nothing, remembered a while
MAX_FLUSH_DELAY_MS = 500
REPORT_EVERY_S = 10.0

# A record between operators: (shard, FeatureEvent, log entry append time in ms).
Routed = tuple[int, FeatureEvent, int]


def entry_ms(entry_id: str) -> int:
    """A Redis stream id starts with the append time in ms: free freshness measurement."""
    return int(entry_id.partition("-")[0] or 0)


def say(message: str) -> None:
    """A line on the job's output, at once. Not ``print(..., flush=True)``: process mode's
    Python workers replace ``print`` with one that takes no ``flush``."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def settle_heap() -> None:
    """Move what start-up allocated (Feast, pandas, pyarrow, pyflink: ~160k objects) out
    of the garbage collector's sight.

    WHY: a full collection scans every tracked object; with those libraries loaded it
    stalls the interpreter for ~100 ms (measured here), and in thread mode every operator
    of the job shares that interpreter: each full collection was a latency spike. Objects
    created later (view states) are still collected normally.
    """
    gc.collect()
    gc.freeze()


def states_descriptor(view: FeatureView, config: JobConfig) -> MapStateDescriptor:
    """The MapState of one view's keys, with the TTL of its entity (if any)."""
    descriptor = MapStateDescriptor(f"states:{view.name}", Types.STRING(), PICKLED)
    ttl_s = config.ttl_s(view.entity)
    if ttl_s > 0:
        from pyflink.common.time import Time

        builder = StateTtlConfig.new_builder(Time.seconds(ttl_s)).cleanup_full_snapshot()
        if config.state_backend == "rocksdb":
            builder = builder.cleanup_in_rocksdb_compact_filter(1000)
        else:
            builder = builder.cleanup_incrementally(10, False)
        descriptor.enable_time_to_live(builder.build())
    return descriptor


def shard_of(view_name: str, key: str, shards: int) -> int:
    """Stable across processes (``hash()`` is salted per interpreter; crc32 is not)."""
    return zlib.crc32(f"{view_name}\x1f{key}".encode()) % shards


class ParseAndRoute(FlatMapFunction):
    """``<entry id>\\t<payload>`` (Redis) or ``<payload>`` (Kafka) -> (item shard,
    FeatureEvent, entry ms).

    The gateway validates already; this is the same check again because the log may be
    written by other producers (and a replay may meet payloads from older versions).
    Rejections never reach features: they go to the event log's dead letters (stream or
    topic) with their reason and are counted (Flink metric ``invalid_events`` and the
    stats hash). Kafka records carry no id here, so their "entry ms" (freshness figures
    only) is when the job parsed them.
    """

    def __init__(self, config: JobConfig, item_view: str) -> None:
        self.config = config
        self.item_view = item_view

    def open(self, runtime_context: RuntimeContext) -> None:
        from flashrec.eventlog.factory import build_event_log

        s = self.config.settings
        self.skew = timedelta(seconds=s.max_future_skew_s)
        self.max_bytes = s.max_event_bytes
        self.view = view_by_name(self.item_view)
        self.shards = self.config.shards
        self.with_ids = self.config.backend == "redis"
        self.log = build_event_log(s)
        self.live = LiveState(self.config)
        self.invalid = runtime_context.get_metrics_group().counter("invalid_events")
        self.metrics = job_metrics.for_job(self.config)
        settle_heap()

    def flat_map(self, value: str) -> Iterator[Routed]:
        if self.with_ids:
            entry_id, _, payload = value.partition("\t")
            appended_ms = entry_ms(entry_id)
        else:
            payload, appended_ms = value, int(time.time() * 1000)
        event = parse_event(
            payload, now=datetime.now(UTC), max_future_skew=self.skew, max_bytes=self.max_bytes
        )
        self.metrics.events.inc()
        if isinstance(event, Rejection):
            from flashrec.eventlog.base import DeadLetter

            self.invalid.inc()
            self.metrics.invalid.inc()
            self.log.append_dead_letters([DeadLetter.from_rejection(event, source="flink")])
            self.live.count(invalid=1)
            return
        fe = feature_event(event, None)
        key = self.view.key_of(fe)
        if key is not None:
            yield shard_of(self.view.name, key, self.shards), fe, appended_ms

    def close(self) -> None:
        self.log.close()
        self.live.close()


class ShardOf(KeySelector):
    """The shard a routed record was sent to (its first field)."""

    def get_key(self, value: Routed) -> int:
        return value[0]


class ShardFold(KeyedProcessFunction):
    """Folds events into the view states of this shard's keys; flushes changed keys.

    ``views``: the views this stage owns (each event is folded into every owned view that
    has a key for it and whose key belongs to the current shard). ``forward``: the views
    of the next stage; with it, storefront events get their item's category (the item
    stage) and leave towards each distinct shard of those views' keys.

    Held per key (MapState ``states``, key ``<view>\\x1f<key>``): the view's state, the
    as-of time (latest event time folded), the latest event (type, time, entry ms: the
    rescore reason and freshness) and, for items, the category. An item never created on
    this log (its creation older than the log's retention) falls back to the catalog hash
    this job writes (``flashrec:catalog:category``), read once per item through a cache.
    """

    def __init__(
        self, name: str, views: tuple[str, ...], config: JobConfig, forward: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.view_names = views
        self.forward_names = forward
        self.config = config

    def open(self, runtime_context: RuntimeContext) -> None:
        self.views: list[FeatureView] = [view_by_name(v) for v in self.view_names]
        self.forward: list[FeatureView] = [view_by_name(v) for v in self.forward_names]
        self.shards = self.config.shards
        self.states = {
            v.name: runtime_context.get_map_state(states_descriptor(v, self.config))
            for v in self.views
        }
        self.ttl_s = {v.name: self.config.ttl_s(v.entity) for v in self.views}
        self.changed = runtime_context.get_map_state(
            MapStateDescriptor("changed", Types.STRING(), Types.BOOLEAN())
        )
        # Decoded states of recent keys, with when each was last written: skips unpickling
        # MapState on every event (this operator is the only writer of its keys' state, so
        # the copy stays exact); bounded by size, and an entry older than its view's TTL is
        # dropped as the state itself is.
        # (WHY an OrderedDict, not cachetools: this runs for every view of every event, and
        # cachetools' TLRUCache costs ~6 us more per access here, several % of the core
        # the Python side saturates at 2,000 events/s.)
        self.cache: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()
        self.pending: dict[int, dict[str, dict[str, Any]]] = {}  # shard -> slot -> held
        self.timers: set[int] = set()
        self.due: dict[int, float] = {}  # shard -> when its pending changes are to be written
        self.merged: set[int] = set()  # shards whose restored ``changed`` keys were merged
        self._redis = None
        # items whose catalog lookup found nothing lately (bounded, forgotten after a while)
        self._misses: TTLCache[str, bool] = TTLCache(
            CATALOG_MISSES_KEPT, self.config.catalog_cache_s, timer=time.monotonic
        )
        self.metrics = job_metrics.for_job(self.config)
        started = time.monotonic()
        self.writer = make_writer(self.config, apply=True)
        self.writer.warm_up()
        say(f"{self.name}: {self.config.writer} writer ready in {time.monotonic() - started:.1f}s")
        self.live = LiveState(self.config)
        self.flushes = self.rows = self.worst_ms = 0
        self.last_report = time.monotonic()
        self.last_flush_ms = 0.0
        settle_heap()

    # -- folding ---------------------------------------------------------------------------

    def process_element(self, value: Routed, ctx: KeyedProcessFunction.Context):
        shard, event, appended_ms = value
        if self.forward:
            event = self._with_category(event)
        for view in self.views:
            key = view.key_of(event)
            if key is not None and shard_of(view.name, key, self.shards) == shard:
                self._fold(shard, view, key, event, appended_ms)
        if self.forward:
            targets = {
                shard_of(v.name, k, self.shards)
                for v in self.forward
                if (k := v.key_of(event)) is not None
            }
            for target in targets:
                yield target, event, appended_ms
        mem = self.pending.get(shard)
        if not mem:
            return
        now = time.time() * 1000
        due = self.due.get(shard)
        if len(mem) >= self.config.flush_rows or (due is not None and now >= due):
            self._flush(shard)  # under load, records arrive before the timer's turn comes
        elif due is None:
            due = self.due[shard] = now + self._delay_ms()
            if shard not in self.timers:  # the timer flushes a shard that went quiet
                ctx.timer_service().register_processing_time_timer(int(due) + 1)
                self.timers.add(shard)

    def _fold(self, shard: int, view: FeatureView, key: str, event: FeatureEvent, at: int) -> None:
        slot = f"{view.name}\x1f{key}"
        held = self._held(slot, view, event)
        view.update(held["state"], event)
        held["as_of"] = max(held["as_of"], event.event_time_ms)
        held["last"] = (event.event_type, event.event_time_ms, at)
        self.states[view.name].put(slot, held)
        mem = self.pending.setdefault(shard, {})
        if slot not in mem:
            self.changed.put(slot, True)
            mem[slot] = held

    def _held(self, slot: str, view: FeatureView, event: FeatureEvent) -> dict[str, Any]:
        now = time.monotonic()
        ttl = self.ttl_s[view.name]
        cached = self.cache.pop(slot, None)
        held = cached[0] if cached is not None and not (ttl and now - cached[1] > ttl) else None
        if held is None:
            held = self.states[view.name].get(slot)
        if held is None:
            held = {"state": view.new_state(), "as_of": event.event_time_ms, "category": None}
        self.cache[slot] = (held, now)
        if len(self.cache) > STATE_CACHE_KEYS:
            self.cache.popitem(last=False)
        self._expire_cache(now)
        return held

    def _expire_cache(self, now: float) -> None:
        """Drop the least recently written entries older than their view's TTL (the cache
        is in write order, so the expired ones are at its front)."""
        while self.cache:
            slot, (_, at) = next(iter(self.cache.items()))
            ttl = self.ttl_s.get(slot.partition("\x1f")[0], 0)
            if not ttl or now - at <= ttl:
                return
            self.cache.popitem(last=False)

    def _with_category(self, event: FeatureEvent) -> FeatureEvent:
        """The item stage: remember a created item's category, attach it to its events."""
        view = self.views[0]
        slot = f"{view.name}\x1f{event.item_id}"
        held = self._held(slot, view, event)
        if event.event_type == "item_created" and event.category:
            held["category"] = event.category
        if held["category"] is None and event.category is None:
            held["category"] = self._catalog_category(event.item_id)
        if event.category is None and held["category"] is not None:
            event = event._replace(category=held["category"])
        return event

    def _catalog_category(self, item_id: str) -> str | None:
        if item_id in self._misses:
            return None
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(
                self.config.settings.redis_url, decode_responses=True
            )
        category = self._redis.hget(self.config.catalog_key, item_id)
        if category is None:
            self._misses[item_id] = True
        return category

    # -- flushing --------------------------------------------------------------------------

    def _delay_ms(self) -> int:
        """``flush_ms``, stretched under load (up to ``MAX_FLUSH_DELAY_MS``) so that
        flushing takes at most about half of the operator's time.

        Each write call has a fixed cost besides its per-row cost: at high rates fewer,
        larger flushes keep up where frequent small ones would not; at low rates the delay
        stays at ``flush_ms``.
        """
        stretched = min(int(self.last_flush_ms), MAX_FLUSH_DELAY_MS)
        return max(self.config.flush_ms, stretched)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        shard = ctx.get_current_key()
        self.timers.discard(shard)
        self._flush(shard)
        yield from ()  # emits nothing; process mode iterates whatever a timer returns

    def _flush(self, shard: int) -> None:
        self.due.pop(shard, None)
        mem = self.pending.setdefault(shard, {})
        if shard not in self.merged:  # first flush since (re)start: restored changes too
            self.merged.add(shard)
            for slot in list(self.changed.keys()):
                state = self.states.get(slot.partition("\x1f")[0])
                if slot not in mem and state is not None:
                    held = state.get(slot)
                    if held is not None:
                        mem[slot] = held
        if mem:
            self._write([self._record(slot, held) for slot, held in mem.items()])
        mem.clear()
        self.changed.clear()

    @staticmethod
    def _record(slot: str, held: dict[str, Any]) -> FeatureRecord:
        view_name, _, key = slot.partition("\x1f")
        event_type, event_time_ms, at = held.get("last", ("", held["as_of"], 0))
        return FeatureRecord(
            view_name,
            key,
            held["as_of"],
            view_by_name(view_name).values(held["state"]),
            event_type,
            event_time_ms,
            at,
        )

    def _write(self, records: list[FeatureRecord]) -> None:
        started = time.perf_counter()
        counts = flush(records, self.writer, self.live)
        seconds = time.perf_counter() - started
        self.last_flush_ms = seconds * 1000
        self.flushes += 1
        self.rows += counts["rows"]
        now_ms = int(time.time() * 1000)
        oldest = min((r.entry_ms for r in records if r.entry_ms), default=now_ms)
        self.worst_ms = max(self.worst_ms, now_ms - oldest)
        self.metrics.flushed(self.name, seconds, counts["rows"], (now_ms - oldest) / 1000)
        if time.monotonic() - self.last_report >= REPORT_EVERY_S:
            say(
                f"{self.name}: {self.flushes} flushes, {self.rows} rows in the last "
                f"{time.monotonic() - self.last_report:.0f}s; oldest entry at a flush "
                f"{self.worst_ms} ms old"
            )
            self.live.count(flushes=self.flushes, rows=self.rows)
            self.flushes = self.rows = self.worst_ms = 0
            self.last_report = time.monotonic()

    def close(self) -> None:
        """End of a bounded run (or a stop): write what is still pending."""
        leftovers = [self._record(s, h) for mem in self.pending.values() for s, h in mem.items()]
        if leftovers:
            self._write(leftovers)
        say(f"{self.name} closing: {self.rows} rows since the last report")
        self.live.count(flushes=self.flushes, rows=self.rows)
        self.writer.close()
        self.live.close()
        if self._redis is not None:
            self._redis.close()
