"""Build the configured event log: Redis Streams on one machine, Kafka in production.

Callers (gateway, publisher, stream jobs) ask for "the event log" and never name a backend,
so moving to Kafka is a configuration change (``FLASHREC_EVENTLOG_BACKEND=kafka``).
"""

from __future__ import annotations

from typing import Any

from flashrec.eventlog.base import EventLog
from flashrec.settings import Settings

BACKENDS = ("redis", "kafka")


def backend_name(settings: Settings) -> str:
    name = settings.eventlog_backend.lower()
    if name not in BACKENDS:
        raise ValueError(f"FLASHREC_EVENTLOG_BACKEND must be one of {BACKENDS}, got {name!r}")
    return name


def build_event_log(settings: Settings, **overrides: Any) -> EventLog:
    """The backend named by ``settings.eventlog_backend`` (default ``redis``)."""
    if backend_name(settings) == "kafka":
        from flashrec.eventlog.kafka import KafkaEventLog

        return KafkaEventLog.from_settings(settings, **overrides)
    from flashrec.eventlog.redis_streams import RedisStreamsEventLog

    return RedisStreamsEventLog.from_settings(settings, **overrides)
