"""Cached lists never go back in time: two writers against a real Redis.

The scorer can run as several consumers, and a slow one may finish a list computed before
a faster one's. ``write_user_list`` compares ``computed_at`` inside its Lua script, so the
fresher list stays whatever the order of arrival.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest
import redis

from flashrec.serving import cache, keys

pytestmark = pytest.mark.integration
SHOPPER = "u:two-writers"


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    for variant in ("champion",):
        client.delete(keys.rec_list(variant, SHOPPER), keys.last_known_good(variant, SHOPPER))
    yield client
    client.delete(keys.rec_list("champion", SHOPPER), keys.last_known_good("champion", SHOPPER))
    client.close()


def _list(computed_at: int, writer: str) -> cache.CachedList:
    return cache.CachedList(
        (f"{writer}-{computed_at}",), (1.0,), writer, "champion", computed_at, "personalized"
    )


def _current(r: redis.Redis) -> cache.CachedList | None:
    return cache.decode_list(r.get(keys.rec_list("champion", SHOPPER)))


def _lkg(r: redis.Redis) -> cache.CachedList | None:
    return cache.decode_list(r.get(keys.last_known_good("champion", SHOPPER)))


def test_a_late_older_list_does_not_replace_a_fresher_one(r: redis.Redis) -> None:
    assert cache.write_user_list(r, SHOPPER, _list(1_000, "fast")) is cache.ListWrite.WRITTEN
    assert cache.write_user_list(r, SHOPPER, _list(2_000, "fast")) is cache.ListWrite.ROTATED
    # The slow consumer finishes a list it computed at t=1,500: too late.
    outcome = cache.write_user_list(r, SHOPPER, _list(1_500, "slow"))
    assert outcome is cache.ListWrite.REFUSED_OLDER and not outcome
    assert _current(r).computed_at == 2_000 and _lkg(r).computed_at == 1_000
    # A tie replaces (a replay of the same list changes nothing a reader can see).
    assert cache.write_user_list(r, SHOPPER, _list(2_000, "slow")) is cache.ListWrite.ROTATED
    assert _current(r).model_version == "slow"


def test_a_corrupt_current_list_is_replaced(r: redis.Redis) -> None:
    r.set(keys.rec_list("champion", SHOPPER), b"x,y\nnot json")
    assert cache.write_user_list(r, SHOPPER, _list(5, "w")) is cache.ListWrite.ROTATED
    assert _current(r).computed_at == 5


def test_two_concurrent_writers_never_move_the_list_back_in_time(r: redis.Redis) -> None:
    """Two threads write interleaved, shuffled timestamps (so each often arrives late) while
    a reader watches: the current list's computed_at never decreases, and at the end it is
    the newest either writer computed."""
    rng = random.Random(12)
    stamps = list(range(1, 801))
    rng.shuffle(stamps)
    series = {"a": stamps[::2], "b": stamps[1::2]}
    outcomes: dict[str, list[cache.ListWrite]] = {"a": [], "b": []}
    seen: list[int] = []
    done = threading.Event()

    def writer(name: str) -> None:
        client = redis.Redis(connection_pool=r.connection_pool)
        for ts in series[name]:
            outcomes[name].append(cache.write_user_list(client, SHOPPER, _list(ts, name)))

    def reader() -> None:
        while not done.is_set():
            current = _current(r)
            if current is not None:
                seen.append(current.computed_at)

    threads = [threading.Thread(target=writer, args=(n,)) for n in series]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()

    assert _current(r).computed_at == max(stamps)
    assert all(a <= b for a, b in zip(seen, seen[1:], strict=False)), "went back in time"
    refused = sum(o is cache.ListWrite.REFUSED_OLDER for o in outcomes["a"] + outcomes["b"])
    assert 0 < refused < len(stamps)  # shuffled arrival: many late writes were refused
    lkg = _lkg(r)
    assert lkg is not None and lkg.computed_at < max(stamps)
