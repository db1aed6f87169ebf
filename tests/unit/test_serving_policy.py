"""The read path's decisions, without Redis: tiers, fallback chain, stock, A/B, attribution."""

from __future__ import annotations

import orjson
import pytest

from bentos.read_query import K_MAX, BadRequest, parse_query
from bentos.read_schema import OPENAPI
from flashrec.serving import keys
from flashrec.serving.cache import (
    CachedList,
    computed_at_of,
    decode_list,
    encode_list,
    split_ids,
)
from flashrec.serving.policy import (
    assign_variant,
    interleave,
    is_fresh,
    select,
    tier_for,
)

NOW = 1_800_000_000_000
MAX_AGE = 600_000
LKG_AGE = 86_400_000


def lst(items, *, age_ms=0, tier="personalized", version="m1"):
    items = tuple(items)
    return CachedList(
        items,
        tuple(1.0 - i / 100 for i in range(len(items))),
        version,
        "champion",
        NOW - age_ms,
        tier,
        12,
    )


def choose(**kw):
    base = dict(k=5, now_ms=NOW, max_age_ms=MAX_AGE, lkg_max_age_ms=LKG_AGE)
    return select(**{**base, **kw})


POP = lst([f"p{i}" for i in range(30)], tier="segment", version="pop")


def test_tier_follows_interaction_count():
    assert tier_for(0, known=False) == "segment"
    assert tier_for(1, known=False) == "content"
    assert tier_for(9, known=True) == "content"
    assert tier_for(10, known=True) == "personalized"


def test_fresh_cached_list_is_served_with_its_tier():
    d = choose(current=lst("abcdefg", tier="content"), popular=POP)
    assert (d.source, d.tier, d.model_version) == ("cache", "content", "m1")
    assert d.items == tuple("abcde") and d.padded == 0


def test_stale_list_falls_back_to_last_known_good_then_popularity():
    stale = lst("abcdef", age_ms=MAX_AGE + 1)
    d = choose(current=stale, lkg=lst("uvwxyz", age_ms=MAX_AGE * 2, version="m0"), popular=POP)
    assert (d.source, d.model_version) == ("last_known_good", "m0")
    d = choose(current=stale, popular=POP)
    assert d.source == "popularity" and d.items[0] == "p0"
    assert not is_fresh(stale, NOW, MAX_AGE) and is_fresh(lst("a"), NOW, MAX_AGE)


def test_nothing_cached_known_shopper_gets_popularity():
    d = choose(popular=POP)
    assert (d.source, d.tier, len(d.items)) == ("popularity", "popularity", 5)


def test_anonymous_gets_segment_tier_from_interleaved_segments():
    d = choose(segments=[lst("abc"), lst("xyz")], popular=POP, anonymous=True, k=4)
    assert (d.source, d.tier) == ("segment", "segment")
    assert d.items == ("a", "x", "b", "y")
    assert [i for i, _ in interleave([lst("ab"), None, lst("bc")])] == ["a", "b", "c"]


def test_sold_out_items_never_served_even_if_cached_and_padding_fills_k():
    d = choose(current=lst("abcdef"), popular=POP, sold_out={"a", "c", "e", "p0"}, k=5)
    assert d.items == ("b", "d", "f", "p1", "p2") and d.padded == 2
    assert d.source == "cache"


def test_all_sold_out_list_falls_through_to_next_source():
    d = choose(current=lst("ab"), lkg=lst("cd"), popular=POP, sold_out={"a", "b"}, k=2)
    assert d.source == "last_known_good" and d.items == ("c", "d")


def test_viewed_item_is_excluded():
    d = choose(current=lst("abc"), popular=POP, exclude=["a"], k=2)
    assert d.items == ("b", "c")


def test_nothing_anywhere_reports_popularity_not_a_crash():
    d = choose(anonymous=True)
    assert (d.source, d.items) == ("popularity", ())


def test_never_empty_while_catalog_has_items():
    d = choose(current=lst("a"), popular=POP, sold_out={"a"}, k=20)
    assert len(d.items) == 20 and len(set(d.items)) == 20


def test_ab_assignment_is_deterministic_and_follows_shares():
    shares = {"champion": 0.98, "challenger": 0.02}
    first = [assign_variant(f"u:{i}", shares) for i in range(2000)]
    assert first == [assign_variant(f"u:{i}", shares) for i in range(2000)]
    assert 10 <= first.count("challenger") <= 80
    half = [assign_variant(f"u:{i}", {"champion": 0.5, "challenger": 0.5}) for i in range(2000)]
    assert 850 <= half.count("challenger") <= 1150
    # raising the challenger only moves shoppers towards it
    moved = [a for a, b in zip(first, half, strict=True) if a != b]
    assert set(moved) == {"champion"}
    assert assign_variant("u:1", {}) == "champion"


def test_shadow_variant_is_never_served():
    shares = {"champion": 0.5, "shadowy": 0.5}
    picks = {assign_variant(f"u:{i}", shares, shadow={"shadowy"}) for i in range(500)}
    assert picks == {"champion"}
    assert assign_variant("u:1", {"shadowy": 1.0}, shadow={"shadowy"}) == "champion"


def test_cached_list_round_trip_and_corrupt_values():
    c = lst(["i1", "i2"])
    raw = encode_list(c)
    assert raw.startswith(b"%d\ni1,i2\n{" % c.computed_at) and split_ids(raw) == ["i1", "i2"]
    assert decode_list(raw) == c and computed_at_of(raw) == c.computed_at
    assert decode_list(b"1\na,b\nnot json") is None and decode_list(None) is None
    assert decode_list(b"a,b\n{}") is None  # the format before computed_at led: unusable
    assert computed_at_of(b"a,b\n{}") == 0 and computed_at_of(None) == 0
    with pytest.raises(ValueError):
        encode_list(lst(["bad,id"]))


def test_keys_are_prefixed():
    assert keys.rec_list("champion", keys.shopper_ref("u", "7")) == "flashrec:rec:champion:u:7"
    assert keys.segment("device", "mobile") == "flashrec:seg:device:mobile"
    assert keys.tod_bucket(7) == "morning" and keys.tod_bucket(23) == "evening"
    with pytest.raises(ValueError):
        keys.segment("nope", "x")


@pytest.mark.parametrize(
    "qs",
    [
        "",
        "user_id=a&session_id=b",
        "user_id=a&k=0",
        f"user_id=a&k={K_MAX + 1}",
        "user_id=a&k=x",
        "user_id=a%20b",
        "user_id=a&device=%3Cscript%3E",
        "user_id=a&color=red",
        "user_id=a&user_id=b",
        "user_id=a&k=%C2%B2",
        "user_id=a&k=\u0663",
        "user_id=a&k=" + "9" * 4000,
        "user_id=a%0A",
        "user_id=a\n",
        "user_id=a&device=mobile%0A",
        "user_id=a&" + "k=1&" * 2000,
    ],
)
def test_bad_parameters_are_refused_with_a_message(qs):
    with pytest.raises(BadRequest) as err:
        parse_query(qs)
    assert str(err.value)


def test_query_parsing_and_schema_agree():
    q = parse_query(b"session_id=s-1&k=7&device=mobile&item_id=i9")
    assert (q.shopper, q.anonymous, q.k, q.device, q.item_id) == ("s:s-1", True, 7, "mobile", "i9")
    params = {
        p["name"]: p["schema"] for p in OPENAPI["paths"]["/recommendations"]["get"]["parameters"]
    }
    assert params["k"]["maximum"] == K_MAX and params["k"]["minimum"] == 1


def test_read_path_degrades_when_redis_is_unreachable():
    """No Redis at all (closed port): the answer comes from process memory, never an error."""
    import asyncio

    from bentos.read_core import ReadPath, ServingConfig

    async def run():
        rp = ReadPath(ServingConfig(redis_url="redis://127.0.0.1:1/0", redis_timeout_ms=50))
        await rp.start()
        rp.local_popular = POP
        rp.local_sold_out = frozenset({"p0"})
        try:
            return orjson.loads(await rp.answer(parse_query("user_id=u1&k=3")))
        finally:
            await rp.stop()

    body = asyncio.run(run())
    assert body["degraded"] is True and body["source"] == "popularity"
    assert [x["item_id"] for x in body["items"]] == ["p1", "p2", "p3"]
