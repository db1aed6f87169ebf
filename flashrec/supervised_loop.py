"""The loop of a long-running worker (scorer, attribution): step until told to stop.

A supervised worker never dies of one batch: a Redis outage or a failed step is recorded by
the worker's own handler, then waited out with an exponential backoff that a step which
succeeds resets. The worker keeps what makes it differ (which counters, re-warming).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis

#: What a lost or slow Redis raises (redis-py's own errors and the socket's underneath).
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)


def run_until_stopped(
    step: Callable[[], object],
    stop: threading.Event,
    *,
    on_redis_error: Callable[[BaseException], None],
    on_error: Callable[[Exception], None],
    first_backoff_s: float = 0.2,
    max_backoff_s: float = 5.0,
) -> None:
    """Call ``step`` until ``stop`` is set, backing off after each failure."""
    backoff = first_backoff_s
    while not stop.is_set():
        try:
            step()
        except REDIS_ERRORS as exc:
            on_redis_error(exc)
        except Exception as exc:  # noqa: BLE001 - a supervised loop never dies of one batch
            on_error(exc)
        else:
            backoff = first_backoff_s
            continue
        stop.wait(backoff)
        backoff = min(backoff * 2, max_backoff_s)
