"""Event log: backend-neutral interface (``base``) and the Redis Streams backend."""

from flashrec.eventlog.base import (
    DeadLetter,
    EventLog,
    GroupHealth,
    LogRecord,
    RetentionPolicy,
)

__all__ = [
    "DeadLetter",
    "EventLog",
    "GroupHealth",
    "LogRecord",
    "RetentionPolicy",
    "RedisStreamsEventLog",
]


def __getattr__(name: str):  # lazy: importing the interface must not require redis-py
    if name == "RedisStreamsEventLog":
        from flashrec.eventlog.redis_streams import RedisStreamsEventLog

        return RedisStreamsEventLog
    raise AttributeError(name)
