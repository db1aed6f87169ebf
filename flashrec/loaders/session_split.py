"""Load a session next-item benchmark split through the project's event model.

A benchmark folder (e.g. the SR-GNN DIGINETICA split) holds:

- ``train_sessions.txt.gz``: one session per line, space-separated integer item ids, in
  chronological order;
- ``test_pairs.tsv.gz``: header ``prefix<TAB>next_item``; one test case per line.

WHY through events: a user's own export reaches the model as ``StorefrontEvent`` views,
so the benchmark takes the same path (validate every event with pydantic, then rebuild
sessions by ``session_id`` ordered by ``event_time``). The files carry no timestamps, so
times are synthetic: session ``i`` starts at ``BASE_TIME + i * SESSION_SPACING`` and its
items are ``ITEM_SPACING`` apart. Each test case becomes its own session (prefix then the
target), so the rebuilt last event is the target.
"""

from __future__ import annotations

import gzip
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter

from flashrec.events import StorefrontEvent

log = logging.getLogger(__name__)

#: Synthetic clock for files without timestamps (documented so replays are reproducible).
BASE_TIME = datetime(2016, 1, 1, tzinfo=UTC)
SESSION_SPACING = timedelta(seconds=60)
ITEM_SPACING = timedelta(seconds=5)

_EVENTS_ADAPTER: TypeAdapter[list[StorefrontEvent]] = TypeAdapter(list[StorefrontEvent])


@dataclass(frozen=True)
class SessionSplit:
    """Train sessions and test (prefix, next item) cases, item ids as ints."""

    train_sessions: list[np.ndarray]
    test_prefixes: list[np.ndarray]
    test_targets: np.ndarray
    n_items: int  # item ids lie in [0, n_items); 0 is unused when ids start at 1
    n_train_events: int = 0
    n_test_events: int = 0


def read_train_sessions(path: Path) -> list[list[str]]:
    """Raw item-id tokens per session, file order (= chronological)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [line.split() for line in fh if line.strip()]


def read_test_pairs(path: Path) -> list[list[str]]:
    """Each test case as tokens ``prefix... target`` (the target last)."""
    out: list[list[str]] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header[:2] != ["prefix", "next_item"]:
            raise ValueError(f"{path}: expected header 'prefix<TAB>next_item', got {header}")
        for lineno, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or not parts[0].strip():
                raise ValueError(f"{path}:{lineno}: expected 'prefix<TAB>next_item'")
            out.append(parts[0].split() + [parts[1].strip()])
    return out


def sessions_to_events(
    sessions: list[list[str]], prefix: str, first_index: int = 0
) -> list[StorefrontEvent]:
    """Validate every (session, position) as a view event; raises on any bad item id."""
    payloads: list[dict[str, object]] = []
    for i, items in enumerate(sessions):
        sid = f"{prefix}{i}"
        start = BASE_TIME + (first_index + i) * SESSION_SPACING
        for j, item in enumerate(items):
            payloads.append(
                {
                    "event_id": f"{sid}-{j}",
                    "event_time": start + j * ITEM_SPACING,
                    "item_id": item,
                    "event_type": "view",
                    "session_id": sid,
                }
            )
    return _EVENTS_ADAPTER.validate_python(payloads)


def events_to_sessions(events: list[StorefrontEvent]) -> list[np.ndarray]:
    """Group by session_id, order by event_time (then event_id), first-seen session order."""
    order: dict[str, int] = {}
    sid_idx = np.empty(len(events), dtype=np.int64)
    times = np.empty(len(events), dtype=np.float64)
    items = np.empty(len(events), dtype=np.int64)
    for k, ev in enumerate(events):
        sid_idx[k] = order.setdefault(ev.session_id, len(order))
        times[k] = ev.event_time.timestamp()
        items[k] = int(ev.item_id)
    perm = np.lexsort((np.arange(len(events)), times, sid_idx))
    bounds = np.searchsorted(sid_idx[perm], np.arange(len(order) + 1))
    ordered = items[perm]
    return [ordered[bounds[s] : bounds[s + 1]] for s in range(len(order))]


def load_split(folder: str | Path) -> SessionSplit:
    """Read a benchmark folder into sessions via validated StorefrontEvents."""
    folder = Path(folder)
    t0 = time.perf_counter()
    raw_train = read_train_sessions(folder / "train_sessions.txt.gz")
    raw_test = read_test_pairs(folder / "test_pairs.tsv.gz")
    log.info("read %d train sessions, %d test cases", len(raw_train), len(raw_test))
    train_events = sessions_to_events(raw_train, "train-")
    test_events = sessions_to_events(raw_test, "test-", first_index=len(raw_train))
    log.info(
        "validated %d + %d view events in %.1fs",
        len(train_events),
        len(test_events),
        time.perf_counter() - t0,
    )
    train = events_to_sessions(train_events)
    test = events_to_sessions(test_events)
    prefixes = [s[:-1] for s in test]
    targets = np.array([s[-1] for s in test], dtype=np.int64)
    n_items = int(max(max(int(s.max()) for s in train), int(targets.max()))) + 1
    for p in prefixes:
        if len(p):
            n_items = max(n_items, int(p.max()) + 1)
    log.info("rebuilt sessions in %.1fs total", time.perf_counter() - t0)
    return SessionSplit(
        train_sessions=train,
        test_prefixes=prefixes,
        test_targets=targets,
        n_items=n_items,
        n_train_events=len(train_events),
        n_test_events=len(test_events),
    )
