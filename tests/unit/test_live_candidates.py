"""Incremental candidates: session pairs, blending into reserved slots, reading back."""

from __future__ import annotations

import random

import pytest

from flashrec import live_candidates as lc


def test_session_pairs_count_each_new_item_once():
    pairs = lc.SessionPairs(capacity=2)
    assert pairs.new_pairs("s1", ["a"]) == []
    got = pairs.new_pairs("s1", ["b", "a"])
    assert got == [("a", "b", 1.0)]
    assert pairs.new_pairs("s1", ["b", "a"]) == []  # the same list again: nothing new
    got = pairs.new_pairs("s1", ["d", "c", "b", "a"])
    assert got == [
        ("b", "c", 1.0),
        ("a", "c", 0.5),
        ("c", "d", 1.0),
        ("b", "d", 0.5),
        ("a", "d", 0.5),
    ]
    pairs.new_pairs("s2", ["x"])
    pairs.new_pairs("s3", ["y"])  # capacity 2: s1 is forgotten
    assert pairs.new_pairs("s1", ["e", "d", "c"]) == [("d", "e", 1.0), ("c", "e", 0.5)]


def test_blend_places_live_items_in_reserved_slots_keeping_scores_ordered():
    ranked = [(f"m{i}", 10.0 - i) for i in range(12)]
    out = lc.blend(ranked, [("viral", 1.0), ("m1", 0.9), ("m11", 0.8), ("new", 0.7)], slots=3)
    items = [i for i, _ in out]
    assert items[2] == "viral" and items[5] == "m11" and items[8] == "new"
    assert items.index("m1") == 1  # already in the top 10: keeps its place, uses no slot
    assert len(items) == len(set(items)) == 14
    scores = [s for _, s in out]
    assert scores == sorted(scores, reverse=True)
    assert lc.blend(ranked, [("viral", 1.0)], slots=0) == ranked
    assert lc.blend([], [("viral", 1.0)], slots=3) == []


class FakePipe:
    """Records commands (unit test of what the writers queue)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        return lambda *args, **kw: self.calls.append((name, *args))


def test_writers_queue_trending_and_pairs():
    pipe = FakePipe()
    assert lc.write_items(pipe, [("i1", "shoes", 2.5, False), ("i2", "shoes", 1.0, True),
                                 ("i3", None, 9.0, False)]) == 1  # fmt: skip
    names = [c[0] for c in pipe.calls]
    assert ("zadd", lc.trend_key("shoes"), {"i1": 2.5}) in pipe.calls
    assert ("zrem", lc.trend_key("shoes"), "i2") in pipe.calls
    assert "zremrangebyrank" in names and "expire" in names
    pipe = FakePipe()
    assert lc.write_pairs(pipe, [("a", "b", 1.0), ("b", "b", 1.0)], random.Random(0)) == 1
    assert ("zincrby", lc.covis_key("a"), 1.0, "b") in pipe.calls
    assert ("zincrby", lc.covis_key("b"), 0.5, "a") in pipe.calls


@pytest.mark.parametrize("raw", ['["a", "b"]', ["a", "b"]])
def test_recent_items_parses_the_feature(raw):
    assert lc.recent_items(raw) == ["a", "b"]
    assert lc.recent_items("not json") == [] and lc.recent_items(None) == []


def test_trend_watch_signals_a_category_when_its_top_changes_at_most_every_few_seconds():
    watch = lc.TrendWatch(top=2, every_s=3.0)
    assert watch.update([("a", "shoes", 5.0, False), ("b", "shoes", 4.0, False)], 0.0) == [
        ("shoes", "a")
    ]
    assert watch.update([("a", "shoes", 6.0, False)], 1.0) == []  # same leaders
    assert watch.update([("new", "shoes", 9.0, False)], 2.0) == []  # changed, too soon
    assert watch.update([("other", "shoes", 10.0, False)], 5.0) == [("shoes", "other")]
    assert watch.update([("x", None, 99.0, False)], 9.0) == []  # no category: ignored
    assert watch.update([("other", "shoes", 10.0, True)], 9.0) == [("shoes", "a")]


def test_active_shoppers_are_bounded_and_age_out():
    from flashrec.scoring.active import ActiveShoppers

    active = ActiveShoppers(per_category=2, max_age_s=60.0)
    active.saw("u:1", ["shoes", "hats"], now_s=0.0)
    active.saw("u:2", ["shoes"], now_s=10.0)
    active.saw("u:3", ["shoes"], now_s=20.0)
    assert active.in_category("shoes", now_s=30.0) == ["u:3", "u:2"]
    assert active.in_category("hats", now_s=30.0) == ["u:1"]
    assert active.in_category("hats", now_s=100.0) == []
