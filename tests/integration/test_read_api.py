"""The real read API: ``bentoml serve bentos.read_api:ReadAPI`` against Redis (db 15).

One server per module (start-up ~6-10 s); every test writes the Redis state it needs through
the same writer helpers the scorer uses, then asks over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from flashrec.serving import cache, keys

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
POPULAR = [f"pop{i}" for i in range(40)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
def api(r: redis.Redis, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    home = tmp_path_factory.mktemp("bentoml")
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    log = (home / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "bentos.read_api:ReadAPI",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/readyz", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError((home / "serve.log").read_text()[-3000:]) from None
            time.sleep(0.3)
    yield base
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


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
    cache.write_user_list(r, "u:carol", user_list("carol", ["g1", "g2"], version="good"))
    stale = user_list("carol", ["s1", "s2"], age_ms=3_600_000, version="stale")
    assert cache.write_user_list(r, "u:carol", stale)  # "good" rotated into the LKG slot
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
    ],
)
def test_bad_parameters_get_4xx_with_message(api, query):
    status, body = get(api, query)
    assert status == 400 and body["error"]


def test_metrics_and_ab_stats(api, r):
    get(api, "user_id=alice&k=3")
    text = urllib.request.urlopen(api + "/metrics", timeout=5).read().decode()
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
    r.xadd(stream, {"payload": json.dumps(event)})
    cache.AttributionAggregator(r, events_stream=stream).run_once()
    r.delete(stream)
    stats = json.loads(urllib.request.urlopen(api + "/ab/stats", timeout=5).read())
    assert stats["champion"]["impressions"] >= 1 and stats["champion"]["clicks"] >= 1
    spec = json.loads(urllib.request.urlopen(api + "/openapi/read.json", timeout=5).read())
    assert "/recommendations" in spec["paths"]


def test_schemathesis_finds_no_server_error(api: str, r: redis.Redis) -> None:
    """Property-based requests generated from the published OpenAPI schema: never a 5xx."""
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "schemathesis"
    run = subprocess.run(
        [
            str(cli),
            "run",
            f"{api}/openapi/read.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "60",
            "--request-timeout",
            "5",
            "--url",
            api,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout, run.stdout[-3000:]
