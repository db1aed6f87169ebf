"""The features job's Flink operators: parse, fold each feature view, batch into the sinks.

No feature logic lives here: operators call ``flashrec.events.parse_event``,
``flashrec.features.feature_event`` and each view's ``new_state``/``update``/``values``.
What is here is the plumbing only Flink can give: keyed state that is checkpointed with
the source's position (so a restore replays exactly the events after the checkpoint onto
the state as of the checkpoint), and timers for batched, coalesced writes.

Operators hold view *names* and resolve the views in the worker (views carry lambdas that
are better imported than pickled).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from pyflink.common import Types
from pyflink.datastream import (
    FlatMapFunction,
    KeyedProcessFunction,
    KeySelector,
    OutputTag,
    RuntimeContext,
)
from pyflink.datastream.functions import FilterFunction
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from flashrec.events import Rejection, parse_event
from flashrec.features import FeatureEvent, FeatureView, feature_event, view_by_name
from flink_jobs.job_config import JobConfig
from flink_jobs.job_sinks import FeatureRecord, LiveState, flush, make_writer

log = logging.getLogger(__name__)

PICKLED = Types.PICKLED_BYTE_ARRAY()
STATE_CACHE_KEYS = 20_000  # decoded states kept per fold operator
MAX_FLUSH_DELAY_MS = 500
#: Storefront events with their category, from the item operator to the shopper views.
ENRICHED = OutputTag("enriched", PICKLED)

# A record between operators: (FeatureEvent, log entry append time in ms).
Tagged = tuple[FeatureEvent, int]


def entry_ms(entry_id: str) -> int:
    """A Redis stream id starts with the append time in ms: free freshness measurement."""
    return int(entry_id.partition("-")[0] or 0)


class ParseEvents(FlatMapFunction):
    """``<entry id>\\t<payload>`` -> (FeatureEvent, entry ms); invalid ones dead-lettered.

    The gateway validates already; this is the same check again because the log may be
    written by other producers (and a replay may meet payloads from older versions).
    Rejections never reach features: they go to the dead-letter stream with their reason
    and are counted (Flink metric ``invalid_events`` and the stats hash).
    """

    def __init__(self, config: JobConfig) -> None:
        self.config = config

    def open(self, runtime_context: RuntimeContext) -> None:
        from flashrec.eventlog.redis_streams import RedisStreamsEventLog

        s = self.config.settings
        self.skew = timedelta(seconds=s.max_future_skew_s)
        self.max_bytes = s.max_event_bytes
        self.log = RedisStreamsEventLog.from_settings(s)
        self.live = LiveState(self.config)
        self.invalid = runtime_context.get_metrics_group().counter("invalid_events")

    def flat_map(self, value: str):
        entry_id, _, payload = value.partition("\t")
        event = parse_event(
            payload, now=datetime.now(UTC), max_future_skew=self.skew, max_bytes=self.max_bytes
        )
        if isinstance(event, Rejection):
            from flashrec.eventlog.base import DeadLetter

            self.invalid.inc()
            self.log.append_dead_letters([DeadLetter.from_rejection(event, source="flink")])
            self.live.count(invalid=1)
            return
        yield feature_event(event, None), entry_ms(entry_id)

    def close(self) -> None:
        self.log.close()
        self.live.close()


class ViewKey(KeySelector):
    """``view.key_of`` of the record's event (the one place keys are defined)."""

    def __init__(self, view_name: str) -> None:
        self.view_name = view_name
        self._view: FeatureView | None = None

    def get_key(self, value: Tagged) -> str:
        if self._view is None:
            self._view = view_by_name(self.view_name)
        return self._view.key_of(value[0]) or ""


class HasViewKey(FilterFunction):
    """Only events the view is keyed on (e.g. anonymous events have no user key)."""

    def __init__(self, view_name: str) -> None:
        self.view_name = view_name

    def open(self, runtime_context: RuntimeContext) -> None:
        self.view = view_by_name(self.view_name)

    def filter(self, value: Tagged) -> bool:
        return self.view.key_of(value[0]) is not None


class FoldView(KeyedProcessFunction):
    """Folds each event into its key's view state and emits the key's new values.

    State per key (one pickled ValueState): the view's own state, the as-of time (latest
    event time folded) and, for the item view, the item's category. With ``enrich=True``
    (item view, keyed by item_id) storefront events leave through the ``ENRICHED`` side
    output with the category the item's ``item_created`` event set, so shopper views see
    the category without any lookup per event. An item never created on this log (its
    creation older than the log's retention) falls back to the catalog hash this job
    writes (``flashrec:catalog:category``), read once per item through a local cache.
    """

    def __init__(self, view_name: str, config: JobConfig, *, enrich: bool = False) -> None:
        self.view_name = view_name
        self.config = config
        self.enrich = enrich

    def open(self, runtime_context: RuntimeContext) -> None:
        self.view = view_by_name(self.view_name)
        self.state = runtime_context.get_state(ValueStateDescriptor("view", PICKLED))
        # Decoded states of recent keys: skips unpickling the ValueState on every event
        # (this operator is the only writer of its keys' state, so the copy stays exact;
        # the ValueState is still updated on every event, for the checkpoints).
        self.cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._redis = None
        self._misses: dict[str, float] = {}  # item -> when a catalog lookup found nothing

    def _catalog_category(self, item_id: str) -> str | None:
        now = time.monotonic()
        if now - self._misses.get(item_id, -1e9) < self.config.catalog_cache_s:
            return None
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(
                self.config.settings.redis_url, decode_responses=True
            )
        category = self._redis.hget(self.config.catalog_key, item_id)
        if category is None:
            self._misses[item_id] = now
        return category

    def process_element(self, value: Tagged, ctx: KeyedProcessFunction.Context):
        event, appended_ms = value
        key = ctx.get_current_key()
        held = self.cache.pop(key, None)
        if held is None:
            held = self.state.value()
        if held is None:
            held = {"state": self.view.new_state(), "as_of": event.event_time_ms, "category": None}
        if self.enrich:
            if event.event_type == "item_created" and event.category:
                held["category"] = event.category
            if held["category"] is None and event.category is None:
                held["category"] = self._catalog_category(event.item_id)
            if event.category is None and held["category"] is not None:
                event = event._replace(category=held["category"])
            yield ENRICHED, (event, appended_ms)
        self.view.update(held["state"], event)
        held["as_of"] = max(held["as_of"], event.event_time_ms)
        self.state.update(held)
        self.cache[key] = held
        if len(self.cache) > STATE_CACHE_KEYS:
            self.cache.popitem(last=False)
        yield FeatureRecord(
            self.view_name,
            key,
            held["as_of"],
            self.view.values(held["state"]),
            event.event_type,
            event.event_time_ms,
            appended_ms,
        )

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def shard_of(record: FeatureRecord, shards: int) -> int:
    """Stable across processes (``hash()`` is salted per interpreter; crc32 is not)."""
    return zlib.crc32(f"{record.view}\x1f{record.key}".encode()) % shards


class ShardKey(KeySelector):
    def __init__(self, shards: int) -> None:
        self.shards = shards

    def get_key(self, value: FeatureRecord) -> int:
        return shard_of(value, self.shards)


class BatchingSink(KeyedProcessFunction):
    """Coalesces records per (view, key) and flushes every ``flush_ms`` or ``flush_rows``.

    Keyed by shard so that Flink timers (per key) drive the flushes. The buffer is kept
    twice: in a Python dict (fast) and in MapState (checkpointed). Why both: a record
    buffered before a checkpoint whose events the checkpoint acknowledged would otherwise
    be lost by a crash before the flush (no replay brings it back). After a restore the
    restored timers fire and the first flush of each shard merges the MapState in.
    ``close()`` flushes what is left (end of a bounded run, or a stop).
    """

    def __init__(self, config: JobConfig) -> None:
        self.config = config

    def open(self, runtime_context: RuntimeContext) -> None:
        self.buffer = runtime_context.get_map_state(
            MapStateDescriptor("buffer", Types.STRING(), PICKLED)
        )
        started = time.monotonic()
        self.writer = make_writer(self.config, apply=True)
        self.writer.warm_up()
        print(
            f"sink: {self.config.writer} writer ready in {time.monotonic() - started:.1f}s",
            flush=True,
        )
        self.live = LiveState(self.config)
        self.pending: dict[int, dict[str, FeatureRecord]] = {}
        self.timers: set[int] = set()
        self.merged: set[int] = set()  # shards whose restored MapState was merged
        self.flushes = 0
        self.rows = 0
        self.last_report = time.monotonic()
        self.worst_ms = 0
        self.last_flush_ms = 0.0

    def process_element(self, value: FeatureRecord, ctx: KeyedProcessFunction.Context):
        shard = ctx.get_current_key()
        slot = f"{value.view}\x1f{value.key}"
        self.buffer.put(slot, value)
        mem = self.pending.setdefault(shard, {})
        mem[slot] = value
        if len(mem) >= self.config.flush_rows:
            self._flush(shard)
        elif shard not in self.timers:
            now = ctx.timer_service().current_processing_time()
            ctx.timer_service().register_processing_time_timer(now + self._delay_ms())
            self.timers.add(shard)

    def _delay_ms(self) -> int:
        """``flush_ms``, stretched under load (up to ``MAX_FLUSH_DELAY_MS``) so that
        flushing takes at most about half of the sink's time.

        Each Feast write call has a fixed cost (~15 ms here) besides its per-row cost: at
        high rates, fewer and larger flushes keep up where frequent small ones would not,
        and at low rates the delay stays at ``flush_ms``.
        """
        stretched = min(int(self.last_flush_ms), MAX_FLUSH_DELAY_MS)
        return max(self.config.flush_ms, stretched)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        shard = ctx.get_current_key()
        self.timers.discard(shard)
        self._flush(shard)

    def _flush(self, shard: int) -> None:
        mem = self.pending.setdefault(shard, {})
        if shard not in self.merged:
            restored = dict(self.buffer.items())
            mem = self.pending[shard] = {**restored, **mem}
            self.merged.add(shard)
        if not mem:
            return
        self._write(list(mem.values()))
        mem.clear()
        self.buffer.clear()

    def _write(self, records: list[FeatureRecord]) -> None:
        started = time.perf_counter()
        counts = flush(records, self.writer, self.live)
        self.last_flush_ms = (time.perf_counter() - started) * 1000
        self.flushes += 1
        self.rows += counts["rows"]
        now_ms = int(time.time() * 1000)
        self.worst_ms = max(self.worst_ms, now_ms - min(r.entry_ms for r in records))
        if time.monotonic() - self.last_report >= 10:
            print(
                f"sink: {self.flushes} flushes, {self.rows} rows in the last "
                f"{time.monotonic() - self.last_report:.0f}s; oldest entry at a flush "
                f"{self.worst_ms} ms old",
                flush=True,
            )
            self.live.count(flushes=self.flushes, rows=self.rows)
            self.flushes = self.rows = self.worst_ms = 0
            self.last_report = time.monotonic()

    def close(self) -> None:
        leftovers = [r for mem in self.pending.values() for r in mem.values()]
        if leftovers:
            self._write(leftovers)
        print(f"sink closing: {self.rows} rows since the last report", flush=True)
        self.live.count(flushes=self.flushes, rows=self.rows)
        self.writer.close()
        self.live.close()
