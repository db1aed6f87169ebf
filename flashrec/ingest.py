"""Backend-neutral ingestion: validate a batch, drop repeats, append, dead-letter the rest.

The gateway, the publisher and any other entry point call ``ingest`` so that a payload gets
the same verdict wherever it arrives. Every payload has exactly one outcome (accepted and
appended, or rejected and dead-lettered with its reason and raw text), so
``in = accepted + rejected`` holds per call and over the streams (the one exception, a
dead-letter append that fails after the events were appended, is counted in the answer as
``dead_letters_lost``).

Idempotency: storefronts retry on timeouts, so the same ``event_id`` may arrive twice. A
``DedupeStore`` remembers ids for a window; the id is claimed atomically *before* the append
(two gateway workers racing on one id cannot both accept it) and released again if the
append fails, so that the client's retry is not refused as a duplicate.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from flashrec.eventlog.base import DeadLetter, EventLog
from flashrec.events import Rejection, load_json, parse_event, safe_text
from flashrec.settings import default_of

logger = logging.getLogger(__name__)

Payload = str | bytes | Mapping[str, Any]
Status = Literal["accepted", "rejected"]

DEFAULT_DEDUPE_WINDOW_S = default_of("dedupe_window_s")


class DedupeStore(ABC):
    """Remembers event ids for a window; ``claim`` is an atomic check-and-mark."""

    @abstractmethod
    def claim(self, event_ids: Sequence[str]) -> list[bool]:
        """Mark ids as seen; True for each id that was NOT seen within the window."""

    @abstractmethod
    def release(self, event_ids: Sequence[str]) -> None:
        """Forget ids claimed by a batch whose append failed (so a retry is accepted)."""


class MemoryDedupeStore(DedupeStore):
    """In-process store for tests and single-process tools (not shared between workers)."""

    def __init__(
        self, window_s: float = DEFAULT_DEDUPE_WINDOW_S, clock: Callable[[], float] | None = None
    ) -> None:
        import time

        self.window_s = window_s
        self._clock = clock or time.monotonic
        self._seen: dict[str, float] = {}

    def claim(self, event_ids: Sequence[str]) -> list[bool]:
        now = self._clock()
        out = []
        for event_id in event_ids:
            expires = self._seen.get(event_id)
            fresh = expires is None or expires <= now
            if fresh:
                self._seen[event_id] = now + self.window_s
            out.append(fresh)
        return out

    def release(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            self._seen.pop(event_id, None)


class RedisDedupeStore(DedupeStore):
    """One key per id, ``SET key 1 NX EX window``: shared by every gateway worker.

    Memory is ~100 bytes per key: a 900 s window at a 2k events/s peak holds ~1.8M keys
    (~180 MB). Ids older than the window are caught later by the lake's silver dedupe.
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        window_s: int = DEFAULT_DEDUPE_WINDOW_S,
        *,
        client: Any = None,
    ) -> None:
        import redis

        self.prefix = prefix
        self.window_s = int(window_s)
        self._owns_client = client is None
        self._r = client or redis.Redis.from_url(redis_url)

    def claim(self, event_ids: Sequence[str]) -> list[bool]:
        if not event_ids:
            return []
        pipe = self._r.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.set(self.prefix + event_id, b"1", nx=True, ex=self.window_s)
        return [bool(ok) for ok in pipe.execute()]

    def release(self, event_ids: Sequence[str]) -> None:
        if event_ids:
            self._r.delete(*(self.prefix + i for i in event_ids))

    def close(self) -> None:
        if self._owns_client:
            self._r.close()


@dataclass(frozen=True)
class EventResult:
    """The verdict on one payload; ``index`` is its position in the batch."""

    index: int
    event_id: str | None
    status: Status
    reason: str | None = None
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "event_id": self.event_id,
            "status": self.status,
            "reason": self.reason,
            "field": self.field,
        }


@dataclass(frozen=True)
class IngestResult:
    """Per-payload verdicts plus counts (``accepted + rejected == len(results)``).

    ``dead_letters_lost`` counts rejections that could not be dead-lettered because the
    dead-letter append failed *after* the accepted events were appended (see ``ingest``);
    ``dead_lettered`` is then ``rejected - dead_letters_lost``."""

    results: list[EventResult] = field(default_factory=list)
    dead_letters_lost: int = 0

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.results if r.status == "accepted")

    @property
    def rejected(self) -> int:
        return len(self.results) - self.accepted

    @property
    def dead_lettered(self) -> int:
        return self.rejected - self.dead_letters_lost

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "dead_lettered": self.dead_lettered,
            "results": [r.to_dict() for r in self.results],
        }


@dataclass(frozen=True)
class IngestLimits:
    """The validation bounds, from ``Settings`` (``max_event_bytes``, ``max_future_skew_s``)."""

    max_event_bytes: int = default_of("max_event_bytes")
    max_future_skew_s: float = default_of("max_future_skew_s")

    @classmethod
    def from_settings(cls, settings: Any) -> IngestLimits:
        return cls(settings.max_event_bytes, settings.max_future_skew_s)


def _guess_event_id(payload: Payload, raw: str) -> str | None:
    """Best-effort id of a refused payload, so a client can match the verdict to its event."""
    data: Any = payload
    if not isinstance(payload, Mapping):
        try:
            data = load_json(raw)
        except (ValueError, RecursionError):
            return None
    value = data.get("event_id") if isinstance(data, Mapping) else None
    return safe_text(value) if isinstance(value, str) else None


def ingest(
    payloads: Sequence[Payload],
    log: EventLog,
    dedupe: DedupeStore,
    *,
    now: datetime | None = None,
    limits: IngestLimits | None = None,
    source: str = "gateway",
) -> IngestResult:
    """Validate ``payloads``; append the valid new ones in canonical JSON, dead-letter the rest.

    Raises whatever the event log raises when it is unreachable: nothing is then reported as
    accepted, ids claimed by this call are released, and the caller should retry the batch.
    If only the dead-letter append fails, and after accepted events were appended, it does
    NOT raise: those events are in the log and their ids claimed, so "retry everything"
    would be false (and the retry refused as duplicates). The verdicts are returned with
    ``dead_letters_lost`` set, and the lost rejections are logged.
    """
    limits = limits or IngestLimits()
    now = now or datetime.now(UTC)
    skew = timedelta(seconds=limits.max_future_skew_s)
    verdicts: list[EventResult | None] = [None] * len(payloads)
    rejections: list[tuple[int, Rejection]] = []
    candidates: list[tuple[int, str, str]] = []  # (index, event_id, canonical json)
    seen_in_batch: set[str] = set()

    for i, payload in enumerate(payloads):
        parsed = parse_event(
            payload, now=now, max_future_skew=skew, max_bytes=limits.max_event_bytes
        )
        if isinstance(parsed, Rejection):
            rejections.append((i, parsed))
            continue
        if parsed.event_id in seen_in_batch:
            reason = "event_id: duplicate of an earlier event in the same batch"
            rejections.append((i, Rejection(reason, "event_id", _raw(payload, parsed.to_json()))))
            continue
        seen_in_batch.add(parsed.event_id)
        candidates.append((i, parsed.event_id, parsed.to_json()))

    fresh = dedupe.claim([event_id for _, event_id, _ in candidates])
    to_append = []
    for (i, event_id, line), is_new in zip(candidates, fresh, strict=True):
        if is_new:
            to_append.append((i, event_id, line))
        else:
            reason = "event_id: duplicate of an event already accepted (within the dedupe window)"
            rejections.append((i, Rejection(reason, "event_id", _raw(payloads[i], line))))

    claimed = [event_id for _, event_id, _ in to_append]
    try:
        if to_append:
            log.append([line for _, _, line in to_append])
    except Exception:
        dedupe.release(claimed)
        raise
    for i, event_id, _ in to_append:
        verdicts[i] = EventResult(i, event_id, "accepted")

    lost = 0
    if rejections:
        rejections.sort(key=lambda item: item[0])
        try:
            log.append_dead_letters(
                [DeadLetter.from_rejection(r, source=source, time=now) for _, r in rejections]
            )
        except Exception as exc:
            if not to_append:
                raise  # nothing was accepted: a plain retry of the batch is right
            lost = len(rejections)
            logger.error(
                "dead-letter append failed after %d events were accepted; %d rejections "
                "not dead-lettered (%r): %s",
                len(to_append),
                lost,
                exc,
                [(i, r.reason) for i, r in rejections][:20],
            )
        for i, r in rejections:
            event_id = _guess_event_id(payloads[i], r.raw)
            verdicts[i] = EventResult(i, event_id, "rejected", r.reason, r.field)

    return IngestResult([v for v in verdicts if v is not None], dead_letters_lost=lost)


def _raw(payload: Payload, canonical: str) -> str:
    """The payload as received (verbatim text when we have it)."""
    if isinstance(payload, bytes):
        return payload.decode("utf-8", errors="replace")
    if isinstance(payload, str):
        return payload
    try:
        return json.dumps(payload, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        return canonical
