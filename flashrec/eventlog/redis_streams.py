"""Redis Streams backend of the event log.

Layout: one stream per log; each entry has a single field ``payload`` (the raw event JSON).
The dead-letter log is its own stream with fields ``reason``, ``field`` (empty when no single
field is to blame), ``raw``, ``time`` (ISO-8601 UTC) and ``source``.

Retention: every XADD carries ``MAXLEN ~ max_len`` (default 1,000,000 events, 100,000 dead
letters). ``~`` trims approximately: Redis drops whole radix-tree nodes (``stream-node-max-
entries``, 100 entries by default), so a stream holds at least ``max_len`` entries and at most
about one node more; trimming costs O(removed nodes), not a scan. ``trim(approximate=False)``
trims exactly. Entries older than the retained window are gone for every reader: size
``max_len`` to cover the longest consumer outage you want to survive (at 2k events/s, 1M
entries is ~8 minutes of a flash-sale peak, ~hours at normal traffic).

Consumer groups (XGROUP CREATE ... MKSTREAM, idempotent) give each reader a position and a
pending-entries list; ``ack`` removes from it. Only stdlib and redis-py here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from flashrec.eventlog.base import (
    DeadLetter,
    EventLog,
    GroupHealth,
    LogRecord,
    RetentionPolicy,
)
from flashrec.settings import Settings

log = logging.getLogger(__name__)

PAYLOAD_FIELD = "payload"
DEFAULT_EVENTS_MAXLEN = 1_000_000
DEFAULT_DEADLETTER_MAXLEN = 100_000
_START_IDS = {"earliest": "0", "latest": "$"}


def _s(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _payload_of(fields: dict[Any, Any]) -> str:
    """The ``payload`` field; an entry written without one is returned as a JSON object of its
    fields (same rule as the Flink source), so validation can dead-letter it visibly."""
    decoded = {_s(k): _s(v) for k, v in fields.items()}
    if PAYLOAD_FIELD in decoded:
        return decoded[PAYLOAD_FIELD]
    return json.dumps(decoded, separators=(",", ":"))


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class RedisStreamsEventLog(EventLog):
    """``EventLog`` on a Redis stream (plus a dead-letter stream)."""

    def __init__(
        self,
        redis_url: str,
        stream: str,
        deadletter_stream: str,
        *,
        retention: RetentionPolicy | None = None,
        deadletter_retention: RetentionPolicy | None = None,
        batch_size: int = 1000,
        client: redis.Redis | None = None,
    ) -> None:
        self.stream = stream
        self.deadletter_stream = deadletter_stream
        self.retention = retention or RetentionPolicy(DEFAULT_EVENTS_MAXLEN)
        self.deadletter_retention = deadletter_retention or RetentionPolicy(
            DEFAULT_DEADLETTER_MAXLEN
        )
        self.batch_size = batch_size
        self._owns_client = client is None
        self._r = client or redis.Redis.from_url(redis_url, decode_responses=True)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RedisStreamsEventLog:
        """Built from the settings (stream names, URL, retention)."""
        kwargs: dict[str, Any] = {
            "retention": RetentionPolicy(settings.events_maxlen),
            "deadletter_retention": RetentionPolicy(settings.deadletter_maxlen),
        }
        kwargs.update(overrides)
        return cls(settings.redis_url, settings.events_stream, settings.deadletter_stream, **kwargs)

    # -- writing ---------------------------------------------------------------------------

    def _xadd_many(
        self, stream: str, rows: Sequence[dict[str, str]], retention: RetentionPolicy
    ) -> list[str]:
        ids: list[str] = []
        for chunk in _chunks(rows, self.batch_size):
            pipe = self._r.pipeline(transaction=False)
            for fields in chunk:
                pipe.xadd(
                    stream, fields, maxlen=retention.max_len, approximate=retention.approximate
                )
            ids.extend(_s(i) for i in pipe.execute())
        return ids

    def append(self, payloads: Sequence[str]) -> list[str]:
        rows = []
        for payload in payloads:
            if isinstance(payload, bytes):
                payload = payload.decode("utf-8", errors="replace")
            if not isinstance(payload, str):
                raise TypeError(f"payloads must be str, got {type(payload).__name__}")
            rows.append({PAYLOAD_FIELD: payload})
        return self._xadd_many(self.stream, rows, self.retention)

    def append_dead_letters(self, records: Sequence[DeadLetter]) -> list[str]:
        rows = [
            {
                "reason": r.reason,
                "field": r.field or "",
                "raw": r.raw,
                "time": r.time.astimezone(UTC).isoformat(),
                "source": r.source,
            }
            for r in records
        ]
        return self._xadd_many(self.deadletter_stream, rows, self.deadletter_retention)

    def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        entries = self._r.xrevrange(self.deadletter_stream, count=count)
        out = []
        for entry_id, raw_fields in reversed(entries):
            f = {_s(k): _s(v) for k, v in raw_fields.items()}
            out.append(
                DeadLetter(
                    reason=f.get("reason", ""),
                    raw=f.get("raw", ""),
                    field=f.get("field") or None,
                    source=f.get("source", "unknown"),
                    time=datetime.fromisoformat(f["time"]) if f.get("time") else datetime.now(UTC),
                    id=_s(entry_id),
                )
            )
        return out

    # -- consumer groups -------------------------------------------------------------------

    def ensure_group(self, group: str, start: str = "earliest") -> bool:
        try:
            start_id = _START_IDS[start]
        except KeyError:
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}") from None
        try:
            self._r.xgroup_create(self.stream, group, id=start_id, mkstream=True)
            return True
        except redis.ResponseError as exc:
            if str(exc).startswith("BUSYGROUP"):
                return False
            raise

    def _read(self, group: str, consumer: str, start: str, count: int, block_ms: int | None):
        try:
            reply = self._r.xreadgroup(
                group, consumer, {self.stream: start}, count=count, block=block_ms
            )
        except redis.ResponseError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
            self.ensure_group(group)
            reply = self._r.xreadgroup(
                group, consumer, {self.stream: start}, count=count, block=block_ms
            )
        records: list[LogRecord] = []
        gone: list[str] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                if not fields:  # trimmed while pending (XADD needs >= 1 field): nothing left
                    gone.append(_s(entry_id))
                    continue
                records.append(LogRecord(_s(entry_id), _payload_of(fields)))
        if gone:
            log.warning(
                "%d pending entries of %s were trimmed before being processed (group %s); "
                "acknowledging them: raise the retention if this repeats",
                len(gone),
                self.stream,
                group,
            )
            self.ack(group, gone)
        return records

    def read_group(
        self, group: str, consumer: str, count: int = 100, block_ms: int | None = None
    ) -> list[LogRecord]:
        return self._read(group, consumer, ">", count, block_ms)

    def read_pending(self, group: str, consumer: str, count: int = 100) -> list[LogRecord]:
        return self._read(group, consumer, "0", count, None)

    def ack(self, group: str, ids: Sequence[str]) -> int:
        acked = 0
        for chunk in _chunks(list(ids), 10_000):
            acked += int(self._r.xack(self.stream, group, *chunk))
        return acked

    # -- health and retention --------------------------------------------------------------

    def _group_info(self, group: str) -> dict[str, Any]:
        for info in self._r.xinfo_groups(self.stream):
            info = {_s(k): _s(v) for k, v in info.items()}
            if info["name"] == group:
                return info
        raise KeyError(f"no consumer group {group!r} on stream {self.stream!r}")

    def pending(self, group: str) -> int:
        return int(self._r.xpending(self.stream, group)["pending"])

    def lag(self, group: str) -> int | None:
        return self._lag_from(self._group_info(group))

    def _lag_from(self, info: dict[str, Any]) -> int | None:
        if info.get("lag") is not None:
            return int(info["lag"])
        # Redis cannot tell (e.g. entries were XDELed). If the group is behind the oldest
        # retained entry, everything retained is undelivered; otherwise unknown.
        first = self._r.xrange(self.stream, count=1)
        if not first:
            return 0
        last_delivered = info.get("last-delivered-id") or "0-0"
        if _id_tuple(last_delivered) < _id_tuple(_s(first[0][0])):
            return self.length()
        return None

    def health(self, group: str) -> GroupHealth:
        info = self._group_info(group)
        return GroupHealth(
            group=group,
            consumers=int(info.get("consumers", 0)),
            pending=int(info.get("pending", 0)),
            lag=self._lag_from(info),
            last_delivered_id=info.get("last-delivered-id"),
        )

    def length(self) -> int:
        return int(self._r.xlen(self.stream))

    def trim(self, max_len: int | None = None, *, approximate: bool | None = None) -> int:
        bound = self.retention.max_len if max_len is None else max_len
        approx = self.retention.approximate if approximate is None else approximate
        return int(self._r.xtrim(self.stream, maxlen=bound, approximate=approx))

    def close(self) -> None:
        if self._owns_client:
            self._r.close()
