"""The benchmark loader goes through StorefrontEvents and rebuilds the same sessions."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from flashrec.loaders.session_split import (
    BASE_TIME,
    events_to_sessions,
    load_split,
    sessions_to_events,
)


def _write(folder: Path) -> None:
    with gzip.open(folder / "train_sessions.txt.gz", "wt") as fh:
        fh.write("1 2\n3 4 5\n6 7\n")
    with gzip.open(folder / "test_pairs.tsv.gz", "wt") as fh:
        fh.write("prefix\tnext_item\n2 3 4\t5\n2 3\t4\n")


def test_load_split_round_trips_through_events(tmp_path: Path) -> None:
    _write(tmp_path)
    split = load_split(tmp_path)
    assert [s.tolist() for s in split.train_sessions] == [[1, 2], [3, 4, 5], [6, 7]]
    assert [p.tolist() for p in split.test_prefixes] == [[2, 3, 4], [2, 3]]
    assert split.test_targets.tolist() == [5, 4]
    assert split.n_items == 8
    assert split.n_train_events == 7 and split.n_test_events == 7


def test_events_are_views_with_increasing_times() -> None:
    events = sessions_to_events([["10", "11"]], "s-")
    assert [e.event_type for e in events] == ["view", "view"]
    assert events[0].event_time == BASE_TIME < events[1].event_time
    assert events[0].session_id == "s-0" and events[1].item_id == "11"
    shuffled = [events[1], events[0]]
    assert [s.tolist() for s in events_to_sessions(shuffled)] == [[10, 11]]


def test_bad_header_is_refused(tmp_path: Path) -> None:
    _write(tmp_path)
    with gzip.open(tmp_path / "test_pairs.tsv.gz", "wt") as fh:
        fh.write("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="header"):
        load_split(tmp_path)
