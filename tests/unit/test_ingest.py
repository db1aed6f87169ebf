"""Ingestion rules without services: an in-memory event log and dedupe store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from flashrec.eventlog.base import DeadLetter, EventLog, GroupHealth, LogRecord, RetentionPolicy
from flashrec.ingest import IngestLimits, MemoryDedupeStore, ingest

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class ListLog(EventLog):
    """Just enough of an event log to see what ingestion appends (optionally failing)."""

    def __init__(self, fail: bool = False) -> None:
        self.retention = RetentionPolicy()
        self.events: list[str] = []
        self.letters: list[DeadLetter] = []
        self.fail = fail

    def append(self, payloads: Sequence[str]) -> list[str]:
        if self.fail:
            raise ConnectionError("log down")
        self.events.extend(payloads)
        return [str(len(self.events) - len(payloads) + i) for i in range(len(payloads))]

    def append_dead_letters(self, records: Sequence[DeadLetter]) -> list[str]:
        self.letters.extend(records)
        return [str(i) for i in range(len(records))]

    def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        return self.letters[-count:]

    def ensure_group(self, group: str, start: str = "earliest") -> bool:
        raise NotImplementedError

    def read_group(self, group, consumer, count=100, block_ms=None) -> list[LogRecord]:
        raise NotImplementedError

    def read_pending(self, group, consumer, count=100) -> list[LogRecord]:
        raise NotImplementedError

    def ack(self, group: str, ids: Sequence[str]) -> int:
        raise NotImplementedError

    def pending(self, group: str) -> int:
        raise NotImplementedError

    def lag(self, group: str) -> int | None:
        raise NotImplementedError

    def health(self, group: str) -> GroupHealth:
        raise NotImplementedError

    def length(self) -> int:
        return len(self.events)

    def trim(self, max_len=None, *, approximate=None) -> int:
        return 0


def event(event_id: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": event_id,
        "event_time": NOW.isoformat(),
        "event_type": "click",
        "item_id": "i1",
        "session_id": "s1",
    }
    return base | fields


def test_every_payload_gets_one_verdict_and_counts_add_up():
    log, dedupe = ListLog(), MemoryDedupeStore()
    payloads = [
        event("a"),
        json.dumps(event("b")),
        b"{broken",
        event("c", price=-1),
        event("d", event_time=(NOW + timedelta(minutes=10)).isoformat()),
        event("a"),
        json.dumps(event("e", note="x" * 200)),
    ]
    result = ingest(payloads, log, dedupe, now=NOW, limits=IngestLimits(max_event_bytes=200))
    assert [r.status for r in result.results] == ["accepted", "accepted"] + ["rejected"] * 5
    assert [r.index for r in result.results] == list(range(7))
    assert (result.accepted, result.rejected) == (2, 5)
    assert result.accepted + result.rejected == len(payloads)
    assert len(log.events) == 2 and len(log.letters) == 5
    assert [r.field for r in result.results[2:]] == [
        "payload",
        "price",
        "event_time",
        "event_id",
        "payload",
    ]
    assert [r.event_id for r in result.results] == ["a", "b", None, "c", "d", "a", None]


def test_accepted_events_are_appended_in_canonical_json():
    log = ListLog()
    ingest([json.dumps(event("a"), indent=2)], log, MemoryDedupeStore(), now=NOW)
    stored = json.loads(log.events[0])
    assert stored["schema_version"] == 1 and stored["quantity"] == 1
    assert log.events[0] == log.events[0].strip() and "\n" not in log.events[0]


def test_dead_letters_keep_reason_field_raw_time_and_source():
    log = ListLog()
    ingest(["nope", event("x", price=-2)], log, MemoryDedupeStore(), now=NOW, source="gateway")
    first, second = log.letters
    assert first.raw == "nope" and first.field == "payload" and first.source == "gateway"
    assert first.reason.startswith("payload: not valid JSON") and first.time == NOW
    assert json.loads(second.raw)["event_id"] == "x" and second.field == "price"


def test_duplicates_within_the_window_are_refused_and_forgotten_after_it():
    clock = [0.0]
    log, dedupe = ListLog(), MemoryDedupeStore(window_s=60, clock=lambda: clock[0])
    assert ingest([event("a")], log, dedupe, now=NOW).accepted == 1
    again = ingest([event("a")], log, dedupe, now=NOW)
    assert again.rejected == 1 and "already accepted" in (again.results[0].reason or "")
    clock[0] = 61.0
    assert ingest([event("a")], log, dedupe, now=NOW).accepted == 1
    assert len(log.events) == 2


def test_duplicate_inside_one_batch_keeps_the_first():
    log = ListLog()
    result = ingest([event("a"), event("a", item_id="i2")], log, MemoryDedupeStore(), now=NOW)
    assert [r.status for r in result.results] == ["accepted", "rejected"]
    assert "same batch" in (result.results[1].reason or "")
    assert json.loads(log.events[0])["item_id"] == "i1"


def test_failed_append_releases_ids_so_a_retry_is_accepted():
    dedupe = MemoryDedupeStore()
    with pytest.raises(ConnectionError):
        ingest([event("a"), event("b")], ListLog(fail=True), dedupe, now=NOW)
    log = ListLog()
    assert ingest([event("a"), event("b")], log, dedupe, now=NOW).accepted == 2


def test_an_empty_batch_does_nothing():
    log = ListLog()
    result = ingest([], log, MemoryDedupeStore(), now=NOW)
    assert (result.accepted, result.rejected, result.results) == (0, 0, [])
    assert log.events == [] and log.letters == []


class DeadLetterDownLog(ListLog):
    """Appends events, but its dead-letter append fails."""

    def append_dead_letters(self, records: Sequence[DeadLetter]) -> list[str]:
        raise ConnectionError("dead-letter stream down")


def test_dead_letter_failure_after_the_append_keeps_the_accepted_events():
    """The events are in the log and their ids claimed: "nothing was accepted, retry" would
    be false, and the retry refused as duplicates. The verdicts come back, with the lost
    dead letters counted."""
    log, dedupe = DeadLetterDownLog(), MemoryDedupeStore()
    result = ingest([event("a"), event("b", price=-1)], log, dedupe, now=NOW)
    assert [r.status for r in result.results] == ["accepted", "rejected"]
    assert (result.accepted, result.rejected, result.dead_lettered) == (1, 1, 0)
    assert result.dead_letters_lost == 1 and len(log.events) == 1
    assert result.to_dict()["dead_lettered"] == 0


def test_dead_letter_failure_with_nothing_accepted_raises_for_a_plain_retry():
    with pytest.raises(ConnectionError):
        ingest([event("b", price=-1)], DeadLetterDownLog(), MemoryDedupeStore(), now=NOW)
