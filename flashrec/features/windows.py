"""Sliding event-time windows as per-second buckets of counts.

Window semantics (the same in batch and stream): a window of W seconds as of time T
counts the events whose second lies in (T - W, T], T being the latest event second the
key has seen. Buckets older than the longest window before T are dropped: values as of
the latest time never need them again, so arrival order does not change any value.
"""

from __future__ import annotations

KINDS = ("view", "click", "add_to_cart", "purchase")
_INDEX = {kind: i for i, kind in enumerate(KINDS)}
LONGEST_WINDOW_S = 3600


def new_buckets() -> dict[int, list[int]]:
    return {}


def add(buckets: dict[int, list[int]], second: int, newest_second: int, kind: str) -> None:
    """Count one event of ``kind``; events older than any window are ignored."""
    index = _INDEX.get(kind)
    if index is None or second <= newest_second - LONGEST_WINDOW_S:
        return
    bucket = buckets.get(second)
    if bucket is None:
        bucket = buckets[second] = [0] * len(KINDS)
    bucket[index] += 1


def prune(buckets: dict[int, list[int]], newest_second: int) -> None:
    for second in [s for s in buckets if s <= newest_second - LONGEST_WINDOW_S]:
        del buckets[second]


def window_counts(
    buckets: dict[int, list[int]], newest_second: int, window_s: int
) -> dict[str, int]:
    """Counts per kind of the events in (newest - window, newest]."""
    totals = [0] * len(KINDS)
    floor = newest_second - window_s
    for second, counts in buckets.items():
        if floor < second <= newest_second:
            for i, n in enumerate(counts):
                totals[i] += n
    return dict(zip(KINDS, totals, strict=True))
