"""The real read API: ``bentoml serve bentos.read_api:ReadAPI`` against Redis (db 15).

The session's server (``conftest``; start-up ~6-10 s); every test writes the Redis state it
needs through the same writer helpers the scorer uses, then asks over HTTP. Its admin
surface runs on its own port with a token (the gateway's tests cover the no-token case).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from flashrec.serving import cache, keys
from tests.integration import fuzz
from tests.integration.servers import READ_ADMIN_TOKEN, Server, admin_get

pytestmark = pytest.mark.integration
POPULAR = [f"pop{i}" for i in range(40)]
ADMIN_TOKEN = READ_ADMIN_TOKEN


def _clean(r: redis.Redis) -> None:
    for pattern in ("flashrec:rec:*", "flashrec:lkg:*", "flashrec:seg:*", "flashrec:ab:*"):
        for key in r.scan_iter(match=pattern):
            r.delete(key)
    r.delete(keys.SOLDOUT, keys.STOCK, keys.IMPRESSIONS)


@pytest.fixture(scope="module")
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    _clean(client)
    cache.write_segment_list(client, keys.POPULAR, POPULAR)
    yield client
    _clean(client)
    client.close()


@pytest.fixture(scope="module")
def api(read_api: Server, r: redis.Redis) -> str:
    """The session's read API (``conftest``), after this module's Redis state is written."""
    return read_api.base


@pytest.fixture(scope="module")
def admin(read_api: Server) -> str:
    return read_api.admin


def get(base: str, query: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{base}/recommendations?{query}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def user_list(
    user: str,
    items: list[str],
    *,
    age_ms: int = 0,
    variant: str = "champion",
    tier: str = "personalized",
    version: str = "m1",
) -> cache.CachedList:
    return cache.CachedList(
        tuple(items),
        tuple(1.0 - i / 100 for i in range(len(items))),
        version,
        variant,
        cache.now_ms() - age_ms,
        tier,
        15 if tier == "personalized" else 4,
    )


def test_personalized_list_served(api, r):
    cache.write_user_list(r, "u:alice", user_list("alice", [f"a{i}" for i in range(30)]))
    status, body = get(api, "user_id=alice&k=10")
    assert status == 200
    assert (body["source"], body["tier"], body["model_version"]) == ("cache", "personalized", "m1")
    assert [x["item_id"] for x in body["items"]] == [f"a{i}" for i in range(10)]


def test_sold_out_item_never_served_even_when_cached(api, r):
    cache.write_user_list(r, "u:bob", user_list("bob", ["b0", "b1", "b2", "b3"]))
    cache.mark_sold_out(r, ["b1", "pop0"])
    status, body = get(api, "user_id=bob&k=6")
    ids = [x["item_id"] for x in body["items"]]
    assert status == 200 and "b1" not in ids and "pop0" not in ids
    assert ids == ["b0", "b2", "b3", "pop1", "pop2", "pop3"] and body["padded"] == 3
    assert cache.read_sold_out(r, ["b1", "b2"]) == {"b1"}


def test_anonymous_shopper_gets_segment_tier(api, r):
    cache.write_segment_list(r, keys.segment("device", "mobile"), ["m1", "m2", "m3"])
    cache.write_segment_list(r, keys.TRENDING, ["t1", "t2"])
    status, body = get(api, "session_id=anon-1&device=mobile&k=5")
    assert status == 200 and (body["source"], body["tier"]) == ("segment", "segment")
    assert {x["item_id"] for x in body["items"][:4]} == {"m1", "m2", "t1", "t2"}
    assert len(body["items"]) == 5


def test_session_list_moves_to_content_tier(api, r):
    cache.write_user_list(r, "s:anon-2", user_list("", ["c1", "c2", "c3"], tier="content"))
    _, body = get(api, "session_id=anon-2&k=3")
    assert (body["source"], body["tier"]) == ("cache", "content")


def test_stale_list_falls_back_to_last_known_good(api, r):
    good = user_list("carol", ["g1", "g2"], age_ms=7_200_000, version="good")
    cache.write_user_list(r, "u:carol", good)
    stale = user_list("carol", ["s1", "s2"], age_ms=3_600_000, version="stale")
    rotated = cache.write_user_list(r, "u:carol", stale)
    assert rotated is cache.ListWrite.ROTATED  # "good" went into the LKG slot
    _, body = get(api, "user_id=carol&k=2")
    assert (body["source"], body["model_version"]) == ("last_known_good", "good")
    assert [x["item_id"] for x in body["items"]] == ["g1", "g2"]


def test_overlapping_lists_still_fill_k(api, r):
    """The script stops reading once earlier lists hold k in-stock ids; when they overlap,
    the API notices the short answer and reads everything again."""
    cache.write_user_list(r, "u:erin", user_list("erin", ["e1", "e2", "e3", "e4", "e5"]))
    cache.write_user_list(r, "u:erin", user_list("erin", ["e1", "e2", "e3", "e4", "e5"]))
    _, body = get(api, "user_id=erin&k=8")
    assert [x["item_id"] for x in body["items"]][:5] == ["e1", "e2", "e3", "e4", "e5"]
    assert len(body["items"]) == 8 and body["padded"] == 3


def test_no_list_falls_back_to_popularity(api, r):
    _, body = get(api, "user_id=nobody&k=4")
    assert body["source"] == "popularity" and len(body["items"]) == 4


def test_missing_keys_degrade_without_errors(api, r):
    r.delete(keys.POPULAR, keys.TRENDING, keys.segment("device", "mobile"))
    try:
        status, body = get(api, "session_id=anon-3&device=mobile&k=3")
        assert status == 200 and body["source"] == "popularity"
        status, body = get(api, "user_id=ghost&k=3")
        assert status == 200 and body["source"] == "popularity"
    finally:
        cache.write_segment_list(r, keys.POPULAR, POPULAR)


def test_ab_shares_change_at_run_time(api, r):
    users = [f"ab{i}" for i in range(20)]
    for u in users:
        for v in ("champion", "challenger"):
            cache.write_user_list(r, f"u:{u}", user_list(u, ["x1", "x2"], variant=v, version=v))
    cache.set_ab_shares(r, {"champion": 1.0, "challenger": 0.0})
    time.sleep(1.5)
    assert {get(api, f"user_id={u}&k=2")[1]["variant"] for u in users} == {"champion"}
    cache.set_ab_shares(r, {"champion": 0.0, "challenger": 1.0})
    time.sleep(1.5)
    answers = [get(api, f"user_id={u}&k=2")[1] for u in users]
    assert {a["variant"] for a in answers} == {"challenger"}
    assert {a["model_version"] for a in answers} == {"challenger"}
    cache.set_ab_shares(r, {"champion": 1.0})


def test_shadow_variant_logged_not_served(api, r):
    cache.write_user_list(r, "u:dora", user_list("dora", ["d1", "d2"]))
    cache.write_user_list(r, "u:dora", user_list("dora", ["z1"], variant="shadowy", version="sh"))
    cache.set_ab_shares(r, {"champion": 0.5, "shadowy": 0.5}, shadow=["shadowy"])
    time.sleep(1.5)
    _, body = get(api, "user_id=dora&k=2")
    assert body["variant"] == "champion" and body["model_version"] == "m1"
    time.sleep(0.5)  # impressions are flushed every ~100 ms
    entries = [
        {k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange(keys.IMPRESSIONS)
    ]
    mine = [e for e in entries if e["request_id"] == body["request_id"]]
    assert {(e["variant"], e["served"]) for e in mine} == {("champion", "1"), ("shadowy", "0")}
    cache.set_ab_shares(r, {"champion": 1.0}, shadow=[])


@pytest.mark.parametrize(
    "query",
    [
        "k=5",
        "user_id=a&session_id=b",
        "user_id=a&k=0",
        "user_id=a&k=1000",
        "user_id=a&k=ten",
        "user_id=%3Cscript%3E",
        "user_id=a&device=a%20b",
        "user_id=a&bogus=1",
        "user_id=u1&k=%C2%B2",  # a Unicode digit: str.isdigit says yes, int() says no
        "user_id=u1&k=" + "9" * 4000,  # past int()'s digit limit
        "user_id=u1%0A",  # a trailing newline
        "user_id=u1&" + "x" * 5000,  # longer than any real query
    ],
)
def test_bad_parameters_get_4xx_with_message(api, query):
    status, body = get(api, query)
    assert status == 400 and body["error"]


def _admin_get(admin: str, path: str, token: str | None = ADMIN_TOKEN) -> tuple[int, bytes]:
    return admin_get(admin, path, token)


def test_a_bad_query_on_a_keep_alive_connection_gets_its_answer(api):
    """It used to get none: the app raised before starting a response, and the client
    waited on the open connection until it gave up."""
    conn = http.client.HTTPConnection(api.removeprefix("http://"), timeout=5)
    try:
        for query in ("user_id=u1&k=%C2%B2", "user_id=u1&k=3"):
            conn.request("GET", f"/recommendations?{query}")  # same connection
            resp = conn.getresponse()
            body = json.loads(resp.read())
            assert resp.status == (400 if "%" in query else 200), body
    finally:
        conn.close()


def test_metrics_and_ab_stats_are_on_the_admin_surface_only(api, admin, r, redis_url):
    get(api, "user_id=alice&k=3")
    for path in ("/metrics", "/ab/stats"):  # not on the storefront's port
        try:
            urllib.request.urlopen(api + path, timeout=5)
            raise AssertionError(f"{path} answered on the public port")
        except urllib.error.HTTPError as err:
            assert err.code == 404
    status, body = _admin_get(admin, "/metrics", token=None)
    assert status == 401 and b"Authorization: Bearer" in body
    assert _admin_get(admin, "/metrics", token="wrong")[0] == 401
    status, body = _admin_get(admin, "/metrics")
    text = body.decode()
    assert status == 200
    for name in (
        "flashrec_read_latency_seconds_bucket",
        "flashrec_read_served_total",
        "flashrec_read_cache_age_seconds",
        "flashrec_read_variant_total",
        "flashrec_read_bad_requests_total",
    ):
        assert name in text, name
    time.sleep(0.3)
    served = {
        k.decode(): v.decode() for _, k_v in r.xrange(keys.IMPRESSIONS)[-1:] for k, v in k_v.items()
    }
    item = served["items"].split(",")[0]
    event = {
        "event_type": "click",
        "user_id": "alice",
        "session_id": "x",
        "item_id": item,
        "event_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
    }
    stream = "flashrec:test:events"
    r.delete(stream)
    from flashrec.attribution.worker import AttributionConfig, AttributionWorker
    from flashrec.eventlog.redis_streams import RedisStreamsEventLog

    event_log = RedisStreamsEventLog(redis_url, stream, stream + ":dead")
    worker = AttributionWorker(r, event_log, AttributionConfig(hold_ms=0, block_ms=10))
    worker.start()
    event_log.append([json.dumps({"event_id": "click-1", **event})])
    worker.step()
    r.delete(stream)
    status, body = _admin_get(admin, "/ab/stats")
    stats = json.loads(body)
    assert status == 200
    assert stats["champion"]["impressions"] >= 1 and stats["champion"]["clicks"] >= 1
    status, body = _admin_get(admin, "/nope")
    assert status == 404 and b"/ab/stats" in body  # lists the routes it has
    spec = json.loads(urllib.request.urlopen(api + "/openapi/read.json", timeout=5).read())
    assert set(spec["paths"]) == {"/recommendations"}


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_finds_no_server_error(api: str, mode: str, tmp_path: Path) -> None:
    """Requests generated from the published OpenAPI schema, valid (positive) and violating
    it (negative): never a 5xx, responses as documented, and invalid input refused."""
    run = fuzz.schemathesis(
        f"{api}/openapi/read.json",
        api,
        mode,
        tmp_path / "report.ndjson",
        max_examples=60,
        extra_checks=("negative_data_rejection",),
    )
    fuzz.record(f"schemathesis read API {mode}", run.requests, run.statuses)
    assert run.returncode == 0, run.output[-3000:]
    assert run.requests > 0 and run.server_errors == 0, run.statuses
