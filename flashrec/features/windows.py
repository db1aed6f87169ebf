"""Sliding event-time windows as per-second buckets of counts.

Window semantics (the same in batch and stream): a window of W seconds as of time T
counts the events whose second lies in (T - W, T], T being the latest event second the
key has seen. Buckets older than the longest window before T are dropped: values as of
the latest time never need them again, so arrival order does not change any value.

The state is plain data (it lives in Flink's keyed state and in Spark's fold). Besides
the buckets it keeps, per window, running totals and a min-heap of the seconds counted
in them, so an update and a read cost O(log n) instead of a scan over up to 3,600
buckets (a viral item during a surge has a bucket for nearly every second).
"""

from __future__ import annotations

import heapq
from typing import Any

KINDS = ("view", "click", "add_to_cart", "purchase")
_INDEX = {kind: i for i, kind in enumerate(KINDS)}
WINDOWS_S = (300, 3600)
LONGEST_WINDOW_S = max(WINDOWS_S)


def new_buckets() -> dict[str, Any]:
    return {
        "b": {},  # second -> counts per kind
        "n": None,  # newest second the totals are kept for
        "w": {w: {"t": [0] * len(KINDS), "h": []} for w in WINDOWS_S},
    }


def add(window: dict[str, Any], second: int, newest_second: int, kind: str) -> None:
    """Count one event of ``kind``; events older than any window are ignored."""
    index = _INDEX.get(kind)
    if index is None or second <= newest_second - LONGEST_WINDOW_S:
        return
    buckets = window["b"]
    bucket = buckets.get(second)
    created = bucket is None
    if created:
        bucket = buckets[second] = [0] * len(KINDS)
    bucket[index] += 1
    for width, tracked in window["w"].items():
        # A second still inside a window was inside it when its bucket was created (the
        # newest second only grows), so its seconds heap already holds it.
        if second > newest_second - width:
            tracked["t"][index] += 1
            if created:
                heapq.heappush(tracked["h"], second)


def prune(window: dict[str, Any], newest_second: int) -> None:
    """Move every window's edge to ``newest_second``: subtract what fell out of it.

    Shorter windows first: a second leaving the longest window has left every other one,
    and every bucket sits in the longest window's heap, so popping it there drops it.
    """
    buckets = window["b"]
    for width in sorted(window["w"]):
        tracked = window["w"][width]
        heap, totals, floor = tracked["h"], tracked["t"], newest_second - width
        while heap and heap[0] <= floor:
            second = heapq.heappop(heap)
            for i, n in enumerate(buckets[second]):
                totals[i] -= n
            if width == LONGEST_WINDOW_S:
                del buckets[second]
    window["n"] = newest_second


def window_counts(window: dict[str, Any], newest_second: int, window_s: int) -> dict[str, int]:
    """Counts per kind of the events in (newest - window, newest]."""
    tracked = window["w"].get(window_s)
    if tracked is not None and window["n"] == newest_second:
        return dict(zip(KINDS, tracked["t"], strict=True))
    totals = [0] * len(KINDS)  # an unusual window or instant: count the buckets
    floor = newest_second - window_s
    for second, counts in window["b"].items():
        if floor < second <= newest_second:
            for i, n in enumerate(counts):
                totals[i] += n
    return dict(zip(KINDS, totals, strict=True))
