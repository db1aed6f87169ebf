"""Rates from monotonic counters: how many entries a Redis stream has ever received.

WHY ``entries-added`` (XINFO STREAM) and not the stream's length: the event and impression
streams are trimmed (MAXLEN), so their length stops growing exactly when traffic is
highest; ``entries-added`` counts every XADD since the stream was created and is what a
rate needs. One XINFO per stream per sample: nothing is read from the stream itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class StreamInfo(Protocol):
    def xinfo_stream(self, name: str) -> dict: ...


def entries_added(client: StreamInfo, stream: str) -> int:
    """Entries ever appended to ``stream`` (0 when it does not exist yet)."""
    try:
        info = client.xinfo_stream(stream)
    except Exception as exc:  # redis.ResponseError "no such key"
        if "no such key" in str(exc).lower():
            return 0
        raise
    return int(info["entries-added"])


@dataclass
class CounterRate:
    """Turns successive readings of a monotonic counter into a per-second rate.

    A counter that goes backwards (the stream was deleted and created again) starts a new
    baseline instead of producing a negative rate.
    """

    last_value: int | None = None
    last_time: float | None = None

    def observe(self, value: int, now: float) -> float | None:
        """The rate since the previous reading; None for the first one."""
        previous, since = self.last_value, self.last_time
        self.last_value, self.last_time = value, now
        if previous is None or since is None or now <= since:
            return None
        return max(value - previous, 0) / (now - since)
