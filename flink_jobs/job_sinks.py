"""Where the features job's results go: online features, live stock, rescore signals.

Plain Python (no pyflink), so the Flink job's operators and the benchmark's plain-Python
baseline consumer flush through exactly the same code.

Every write is *idempotent*: a row carries the absolute values of a key's state (never an
increment), stock is the absolute level, sold-out membership is set from it. Replaying
events after a restore therefore rewrites the same values instead of double counting.
A flush writes, in this order: stock and sold-out state (the serving side filters on it,
so it goes first), the catalog categories and the live trending lists, feature rows per
view (one batched call each), the sessions' live co-visitation pairs, then the rescore
signals (last, so a scorer woken by a signal reads the new features and candidates).

Why one module of ~350 lines: every external write of the job (online features, stock, sold-
out, rescore, live candidates) behind one flush, so a flush is one pipeline.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import redis
from cachetools import LRUCache

from flashrec import live_candidates
from flashrec.features import FEATURE_VIEWS, ITEM, SESSION, view_by_name
from flink_jobs.job_config import JobConfig

log = logging.getLogger(__name__)

_APPLY_LOCK = threading.Lock()
CATEGORIES_KEPT = 100_000
SHOPPER_VIEWS = frozenset(v.name for v in FEATURE_VIEWS if v.entity in ("user_id", "session_id"))


class FeatureRecord(NamedTuple):
    """One key's values after an update: what a flush writes.

    ``as_of_ms`` is the latest event time folded into the state (the row's timestamp);
    ``event_type``/``event_time_ms`` describe the event that caused this update (the rescore
    reason); ``entry_ms`` is the log entry's append time (freshness metrics).
    """

    view: str
    key: str
    as_of_ms: int
    values: dict[str, Any]
    event_type: str
    event_time_ms: int
    entry_ms: int


def coalesce(records: Iterable[FeatureRecord]) -> dict[tuple[str, str], FeatureRecord]:
    """Latest record per (view, key): later records carry the fuller state, so they win."""
    out: dict[tuple[str, str], FeatureRecord] = {}
    for record in records:
        out[record.view, record.key] = record
    return out


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# -- feature writers -----------------------------------------------------------------------


class FeatureWriter(Protocol):
    """Writes absolute feature rows of one view; reads them back (tests, parity, bench)."""

    def write(self, view_name: str, rows: list[dict[str, Any]]) -> None: ...

    def read(self, view_name: str, keys: Sequence[str]) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def open_online_store(settings: Any) -> Any:
    """The project's FeatureStore for online use only.

    ``feature_store()`` also prepares the offline store (DuckDB's delta extension), which a
    streaming writer never touches: when that preparation fails the online path must not.
    """
    from feature_repo import store as feast_store

    try:
        return feast_store.feature_store(settings)
    except RuntimeError as exc:
        log.warning("feature_store(): %s; opening the online store only", exc)
        return feast_store.FlashrecFeatureStore(feast_store.repo_config(settings), settings)


class FeastWriter:
    """Feast's online store through ``feature_repo.store`` (the only public write path).

    Writes are last-writer-wins (``skip_dedup``): Feast's default skips a row whose
    timestamp is not newer than the stored one, but a late event changes a key's values
    without moving its as-of time, and that update must not be dropped. This job is the
    single streaming writer of each key and flushes in order, so its latest row is the
    freshest value; rows keep the as-of event time as their timestamp.
    """

    def __init__(self, config: JobConfig, *, apply: bool = False) -> None:
        from feature_repo import store as feast_store

        self._api = feast_store
        self.store = open_online_store(config.settings)
        self.store.config.online_store.skip_dedup = True
        if apply:
            apply_once(self.store, config.settings.var_dir)
        self.online = feast_store.OnlineWriter(self.store)

    def warm_up(self) -> None:
        """The first Feast call costs ~300 ms (registry, connections): pay it at start."""
        for view in FEATURE_VIEWS:
            self.read(view.name, ["__warm_up__"])

    def write(self, view_name: str, rows: list[dict[str, Any]]) -> None:
        self.online.write(view_name, rows)

    def read(self, view_name: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        return self._api.read_online(self.store, view_name, list(keys))

    def close(self) -> None:
        pass


class RedisHashWriter:
    """Fallback writer without Feast: one hash per key, ``<prefix>:<view>:<key>``.

    Fields ``values`` (JSON of every feature) and ``as_of`` (ISO time). For tests and for
    machines without a Feast registry; the serving side reads Feast.
    """

    def __init__(self, config: JobConfig, client: redis.Redis | None = None) -> None:
        self.prefix = config.features_prefix
        self.r = client or redis.Redis.from_url(config.settings.redis_url, decode_responses=True)

    def warm_up(self) -> None:
        self.r.ping()

    def key(self, view_name: str, key: str) -> str:
        return f"{self.prefix}:{view_name}:{key}"

    def write(self, view_name: str, rows: list[dict[str, Any]]) -> None:
        entity = view_by_name(view_name).entity
        pipe = self.r.pipeline(transaction=False)
        for row in rows:
            values = {k: v for k, v in row.items() if k not in (entity, "event_timestamp")}
            pipe.hset(
                self.key(view_name, row[entity]),
                mapping={
                    "values": json.dumps(values, sort_keys=True),
                    "as_of": row["event_timestamp"].isoformat(),
                },
            )
        pipe.execute()

    def read(self, view_name: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        view = view_by_name(view_name)
        pipe = self.r.pipeline(transaction=False)
        for key in keys:
            pipe.hget(self.key(view_name, key), "values")
        out = []
        for key, raw in zip(keys, pipe.execute(), strict=True):
            values = json.loads(raw) if raw else dict.fromkeys(view.feature_names)
            out.append({view.entity: key, **values})
        return out

    def close(self) -> None:
        self.r.close()


def apply_once(store: Any, var_dir: Path) -> None:
    """Register the feature views (idempotent, ~0.1 s), one process at a time.

    The job's operators do it rather than the job's client, so that only the workers pay
    for importing Feast (~15 s on a busy 2-core machine); a file lock serializes those
    that open together (the registry is one file).
    """
    import fcntl

    from feature_repo.store import apply_definitions

    lock_path = var_dir / "feast" / ".apply.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with _APPLY_LOCK, lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            apply_definitions(store)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def make_writer(config: JobConfig, *, apply: bool = False) -> FeastWriter | RedisHashWriter:
    """The configured writer; ``apply=True`` registers the Feast views first (the job)."""
    if config.writer == "feast":
        return FeastWriter(config, apply=apply)
    return RedisHashWriter(config)


# -- live state and signals ----------------------------------------------------------------


class LiveState:
    """Stock hash, sold-out set, catalog categories and rescore signals, in plain Redis.

    Keys (defaults; see JobConfig): ``flashrec:stock`` hash item_id -> stock level,
    ``flashrec:soldout`` set of items at stock 0, ``flashrec:catalog:category`` hash
    item_id -> category, and the rescore stream (``settings.rescore_stream``) with entries
    ``{user_id | session_id, reason, event_time}``.
    """

    def __init__(self, config: JobConfig, client: redis.Redis | None = None) -> None:
        self.config = config
        self.r = client or redis.Redis.from_url(config.settings.redis_url, decode_responses=True)
        # item -> category this process already wrote (bounded: a forgotten item is only
        # written once more)
        self._categories: LRUCache[str, str] = LRUCache(CATEGORIES_KEPT)
        self._pairs = live_candidates.SessionPairs()
        self._trends = live_candidates.TrendWatch()
        self._rng = random.Random(0)

    def write_items(self, items: Sequence[FeatureRecord]) -> None:
        """Stock level and sold-out membership from the item's absolute values, and the
        item's place in its category's live trending list (``flashrec.live_candidates``)."""
        pipe = self.r.pipeline(transaction=False)
        queued = bool(items)
        rows = [
            (
                r.key,
                r.values.get("item_category"),
                float(r.values.get("item_trending_score") or 0.0),
                bool(r.values.get("item_is_sold_out")),
            )
            for r in items
        ]
        live_candidates.write_items(pipe, rows)
        for category, item in self._trends.update(rows, time.time()):
            pipe.xadd(
                self.config.settings.rescore_stream,
                {"category": category, "reason": f"trending:{item}"},
                maxlen=self.config.rescore_maxlen,
                approximate=True,
            )
        for record in items:
            stock = record.values.get("item_stock_level")
            if stock is not None:
                pipe.hset(self.config.stock_key, record.key, int(stock))
                if record.values.get("item_is_sold_out"):
                    pipe.sadd(self.config.soldout_key, record.key)
                else:
                    pipe.srem(self.config.soldout_key, record.key)
                queued = True
            category = record.values.get("item_category")
            if category and self._categories.get(record.key) != category:
                pipe.hset(self.config.catalog_key, record.key, category)
                self._categories[record.key] = category
                queued = True
        if queued:
            pipe.execute()

    def write_session_pairs(self, sessions: Sequence[FeatureRecord]) -> int:
        """Live co-visitation from the sessions' newest items (``flashrec.live_candidates``)."""
        pairs = [
            pair
            for r in sessions
            for pair in self._pairs.new_pairs(
                r.key, live_candidates.recent_items(r.values.get("session_recent_items"))
            )
        ]
        if not pairs:
            return 0
        pipe = self.r.pipeline(transaction=False)
        n = live_candidates.write_pairs(pipe, pairs, self._rng)
        pipe.execute()
        return n

    def signal_rescore(self, shoppers: Sequence[FeatureRecord]) -> None:
        """One signal per shopper key whose features changed in this flush.

        A session of a known user gets none: the read API serves that user's own list for
        it (the user's signal covers it), so its signal would only cost the scorer a
        feature read to find out there is nothing to do; during a surge that was a third
        of all signals.
        """
        shoppers = [r for r in shoppers if r.values.get("session_is_anonymous") is not False]
        if not shoppers:
            return
        pipe = self.r.pipeline(transaction=False)
        flushed_ms = int(time.time() * 1000)
        for record in shoppers:
            entity = view_by_name(record.view).entity
            pipe.xadd(
                self.config.settings.rescore_stream,
                {
                    entity: record.key,
                    "reason": record.event_type,
                    "event_time": _utc(record.event_time_ms).isoformat(),
                    # the path's timing, carried into the list (``flashrec.scoring.trace``)
                    "entry_ms": record.entry_ms,
                    "flushed_ms": flushed_ms,
                },
                maxlen=self.config.rescore_maxlen,
                approximate=True,
            )
        pipe.execute()

    def count(self, **counters: int) -> None:
        pipe = self.r.pipeline(transaction=False)
        for name, n in counters.items():
            if n:
                pipe.hincrby(self.config.stats_key, name, n)
        pipe.execute()

    def close(self) -> None:
        self.r.close()


def rows_of(records: Iterable[FeatureRecord]) -> list[dict[str, Any]]:
    """Feast rows: join key, every feature, ``event_timestamp`` = as-of event time."""
    rows = []
    for record in records:
        entity = view_by_name(record.view).entity
        rows.append({entity: record.key, **record.values, "event_timestamp": _utc(record.as_of_ms)})
    return rows


def flush(
    records: Iterable[FeatureRecord], writer: FeatureWriter, live: LiveState
) -> dict[str, int]:
    """Write one coalesced batch (see the module docstring for the order); returns counts."""
    latest = coalesce(records)
    by_view: dict[str, list[FeatureRecord]] = {}
    for record in latest.values():
        by_view.setdefault(record.view, []).append(record)
    items = by_view.get(ITEM.name, [])
    if items:
        live.write_items(items)
    for view_name, recs in by_view.items():
        writer.write(view_name, rows_of(recs))
    shoppers = [r for r in latest.values() if r.view in SHOPPER_VIEWS]
    live.write_session_pairs(by_view.get(SESSION.name, []))
    live.signal_rescore(shoppers)
    return {"rows": len(latest), "rescore": len(shoppers)}
