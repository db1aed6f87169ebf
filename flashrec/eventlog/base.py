"""The event log: an append-only, replayable log of raw event payloads.

Backend-neutral on purpose (Redis Streams today, Kafka later): payloads are ``str``, record ids
are opaque ``str`` (ordered within the log), and consumer groups give each reader its own
position plus a list of delivered-but-unacknowledged records (``pending``) so that a crashed
consumer can take its records again (at-least-once). No engine or client types cross this
interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flashrec.events import Rejection


@dataclass(frozen=True)
class LogRecord:
    """One record as read back: its log id and the payload exactly as appended."""

    id: str
    payload: str


@dataclass(frozen=True)
class DeadLetter:
    """A payload we refused, kept verbatim with the reason (which names the field)."""

    reason: str
    raw: str
    field: str | None = None
    source: str = "unknown"
    time: datetime = dc_field(default_factory=lambda: datetime.now(UTC))
    #: Log id of the dead-letter record itself (set when read back, else None).
    id: str | None = None

    @classmethod
    def from_rejection(
        cls, rejection: Rejection, *, source: str, time: datetime | None = None
    ) -> DeadLetter:
        """From ``flashrec.events.parse_event``'s rejection."""
        return cls(
            reason=rejection.reason,
            raw=rejection.raw,
            field=rejection.field,
            source=source,
            time=time or datetime.now(UTC),
        )


@dataclass(frozen=True)
class RetentionPolicy:
    """How much of the log is kept: the newest ``max_len`` records, trimmed on append.

    ``approximate=True`` lets the backend trim lazily in whole storage blocks (cheap), so the
    log may briefly hold somewhat more than ``max_len`` records but never fewer.
    """

    max_len: int = 1_000_000
    approximate: bool = True

    def __post_init__(self) -> None:
        if self.max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {self.max_len}")


@dataclass(frozen=True)
class GroupHealth:
    """A consumer group's position: ``pending`` delivered but unacked, ``lag`` not delivered."""

    group: str
    consumers: int
    pending: int
    lag: int | None
    last_delivered_id: str | None


class EventLog(ABC):
    """Append payloads, read them through consumer groups, acknowledge, dead-letter."""

    retention: RetentionPolicy

    @abstractmethod
    def append(self, payloads: Sequence[str]) -> list[str]:
        """Append payloads in order (batched); returns their log ids, in the same order."""

    @abstractmethod
    def append_dead_letters(self, records: Sequence[DeadLetter]) -> list[str]:
        """Append refused payloads to the dead-letter log; returns their ids."""

    @abstractmethod
    def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The newest ``count`` dead letters, oldest first."""

    @abstractmethod
    def ensure_group(self, group: str, start: str = "earliest") -> bool:
        """Create ``group`` if missing (idempotent); ``start`` is ``earliest`` or ``latest``.

        Returns True when it was created by this call.
        """

    @abstractmethod
    def read_group(
        self, group: str, consumer: str, count: int = 100, block_ms: int | None = None
    ) -> list[LogRecord]:
        """Up to ``count`` records never delivered to the group, now pending for ``consumer``.

        ``block_ms`` waits that long for records when none are there (None: don't wait).
        """

    @abstractmethod
    def read_pending(self, group: str, consumer: str, count: int = 100) -> list[LogRecord]:
        """``consumer``'s own delivered-but-unacked records (to resume after a crash)."""

    @abstractmethod
    def ack(self, group: str, ids: Sequence[str]) -> int:
        """Acknowledge processed records; returns how many were pending."""

    @abstractmethod
    def pending(self, group: str) -> int:
        """Records delivered to the group's consumers and not yet acknowledged."""

    @abstractmethod
    def lag(self, group: str) -> int | None:
        """Records in the log not yet delivered to the group (None if it cannot be told)."""

    @abstractmethod
    def health(self, group: str) -> GroupHealth:
        """Pending, lag and position of one group, in one call."""

    @abstractmethod
    def length(self) -> int:
        """Records currently retained."""

    @abstractmethod
    def trim(self, max_len: int | None = None, *, approximate: bool | None = None) -> int:
        """Apply the retention policy now (or the given bound); returns records removed."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
