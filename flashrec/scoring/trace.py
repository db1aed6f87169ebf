"""The freshness trace a cached list carries: when each step of its path happened.

WHY in the list: "click -> updated list" crosses five processes (gateway, event log, the
stream job, the scorer, the model service); only the list that comes out at the end can
say how long each leg took for *that* list. Times are epoch milliseconds, compact keys:

- ``e``: the triggering event appended to the event log (the gateway accepted it);
- ``f``: the stream job flushed the features it changed and sent the rescore signal;
- ``s``: the signal's own id time in the rescore stream;
- ``r``: the scorer read the signal;
- ``m0`` / ``m1``: the model service call began / ended (equal when no model was called);
- ``w``: the list was written to the cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: (name, from key, to key) of each leg, in path order; the probe adds ``read`` (w -> seen).
LEGS = (
    ("event log -> stream job flush", "e", "f"),
    ("rescore stream wait", "f", "r"),
    ("scorer queueing", "r", "m0"),
    ("model service", "m0", "m1"),
    ("write", "m1", "w"),
)


def signal_ms(record_id: str) -> int:
    """A Redis stream id starts with its append time in ms."""
    head = record_id.partition("-")[0]
    return int(head) if head.isdigit() else 0


def for_signals(
    signals: Iterable[Any], read_ms: int, model: tuple[int, int] | None, written_ms: int
) -> dict[str, int]:
    """The trace of one shopper's list from the signals that asked for it (the newest
    event counts: the list reflects it)."""
    sigs = [s for s in signals if getattr(s, "entry_ms", 0)]
    newest = max(sigs, key=lambda s: s.entry_ms) if sigs else None
    m0, m1 = model if model is not None else (read_ms, read_ms)
    out = {"r": read_ms, "m0": m0, "m1": m1, "w": written_ms}
    if newest is not None:
        out.update(e=newest.entry_ms, f=newest.flushed_ms, s=signal_ms(newest.record_id))
    return out


def legs(trace: Mapping[str, int], seen_ms: int | None = None) -> dict[str, float]:
    """Milliseconds spent in each leg (those whose ends the trace holds)."""
    out = {name: float(trace[b] - trace[a]) for name, a, b in LEGS if a in trace and b in trace}
    if seen_ms is not None and "w" in trace:
        out["cache -> read"] = float(seen_ms - trace["w"])
    return out
