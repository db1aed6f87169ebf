"""Faults around the scorer: killed mid-stream, model service down, Redis restarted.

Real processes throughout: the scorer as ``python -m bentos.scorer_process run`` (killed with
SIGKILL), a real ``bentoml serve`` model service, and for the Redis restart a SEPARATE
memory-only redis-server on a free port (the shared one on 6379 is never touched).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from flashrec.scoring.model_client import ModelClient
from flashrec.serving import cache, keys
from flashrec.settings import PROJECT_ROOT
from tests.integration.test_scorer import (
    ModelServer,
    make_rig,
    stop_process,
    warm_user,
)
from tests.kafka_broker import free_port

pytestmark = pytest.mark.integration
ONLY_CHAMPION = lambda: ({"champion": 1.0}, frozenset())  # noqa: E731


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _scorer_process(redis_url: str, stream: str, server: ModelServer, log: Path):
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "FLASHREC_RESCORE_STREAM": stream,
        "FLASHREC_VAR_DIR": str(log.parent / "var"),
    }
    cmd = [
        sys.executable,
        "-m",
        "bentos.scorer_process",
        "run",
        "--model-url",
        server.url,
        "--features",
        "tests.integration.test_scorer:redis_json_reader",
        "--catalog",
        str(server.artifact),
        "--consumer",
        "c1",
    ]
    out = open(log, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _count(client: redis.Redis, shoppers: list[str]) -> int:
    return int(client.exists(*(keys.rec_list("champion", f"u:{s}") for s in shoppers)))


def test_scorer_killed_mid_stream_catches_up(
    redis_url: str, model_server: ModelServer, tmp_path: Path
) -> None:
    stream = f"test:rescore:{uuid.uuid4().hex[:8]}"
    rig = make_rig(redis_url, model_server.url, model_server.catalog, stream=stream)
    client = rig.client
    uid = uuid.uuid4().hex[:8]
    n = 300
    shoppers = [f"{uid}-{i}" for i in range(n)]
    for i, s in enumerate(shoppers):  # a mix of personalized (10+) and content (1-9)
        warm_user(rig.features, s, 3 + i % 14, start=i)
    signalled_at: dict[str, int] = {}

    def produce(part: list[str], pause: float) -> None:
        for s in part:
            signalled_at[s] = cache.now_ms()
            client.xadd(stream, {"user_id": s, "reason": "view"})
            time.sleep(pause)

    proc = _scorer_process(redis_url, stream, model_server, tmp_path / "scorer.log")
    try:
        produce(shoppers[:10], 0)  # the scorer is up once these have lists
        _wait(lambda: _count(client, shoppers[:10]) == 10, 60, "scorer up")
        producer = threading.Thread(target=produce, args=(shoppers[10:200], 0.02))
        producer.start()
        _wait(lambda: _count(client, shoppers[:200]) >= 40, 60, "lists while streaming")
        os.killpg(proc.pid, signal.SIGKILL)  # mid-stream: the producer is still going
        proc.wait()
        producer.join()
        written = [s for s in shoppers[:200] if client.exists(keys.rec_list("champion", f"u:{s}"))]
        assert 0 < len(written) < 200
        for s in written:  # what was written stays readable while the scorer is dead
            assert cache.decode_list(client.get(keys.rec_list("champion", f"u:{s}"))) is not None
        produce(shoppers[200:], 0)  # signals while it is down wait in the stream
        proc = _scorer_process(redis_url, stream, model_server, tmp_path / "scorer.log")

        def all_fresh() -> bool:
            raw = client.mget([keys.rec_list("champion", f"u:{s}") for s in shoppers])
            return all(
                (c := cache.decode_list(r)) is not None and c.computed_at >= signalled_at[s]
                for s, r in zip(shoppers, raw, strict=True)
            )

        _wait(all_fresh, 60, "every signalled shopper to have a fresh list")
        _wait(lambda: rig.event_log.pending("scorer") == 0, 10, "pending to drain")
        assert rig.event_log.lag("scorer") == 0
    finally:
        if proc.poll() is None:
            stop_process(proc)


def test_model_service_down_keeps_good_lists(redis_url: str, model_server: ModelServer) -> None:
    rig = make_rig(redis_url, model_server.url, model_server.catalog, ab=ONLY_CHAMPION)
    uid = uuid.uuid4().hex[:8]
    warm_user(rig.features, f"{uid}-p", 12)
    warm_user(rig.features, f"{uid}-c", 2, start=30)
    rig.scorer.start()
    rig.signal(user_id=f"{uid}-p")
    rig.drain()
    before = rig.client.get(keys.rec_list("champion", f"u:{uid}-p"))
    assert before is not None
    rig.scorer.rank = ModelClient(f"http://127.0.0.1:{free_port()}", timeout_s=1).rank  # down
    warm_user(rig.features, f"{uid}-p", 14, start=5)  # new activity while the model is down
    rig.signal(user_id=f"{uid}-p")
    rig.signal(user_id=f"{uid}-c")
    rig.drain()
    assert rig.client.get(keys.rec_list("champion", f"u:{uid}-p")) == before  # untouched
    content = rig.read("champion", f"u:{uid}-c")
    assert content is not None and content.tier == "content"  # content tier still written
    assert not rig.scorer.stats.model_service_up
    assert rig.event_log.pending("scorer") == 1  # the personalized signal waits
    time.sleep(0.3)
    rig.scorer.step()  # retry while still down: still nothing bad written
    assert rig.client.get(keys.rec_list("champion", f"u:{uid}-p")) == before
    rig.scorer.rank = ModelClient(model_server.url).rank  # back
    time.sleep(0.3)
    rig.scorer.step()
    after = rig.read("champion", f"u:{uid}-p")
    assert after is not None and after.n_interactions == 14 and after.tier == "personalized"
    assert rig.scorer.stats.model_service_up
    assert rig.event_log.pending("scorer") == 0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, callable]]:
    """A memory-only redis-server on a free port, and a function that restarts it."""
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    cmd = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data),
    ]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, start_new_session=True)]

    def up() -> None:
        _wait(lambda: _pings(port), 10, "redis-server")

    def restart() -> None:
        procs[-1].send_signal(signal.SIGTERM)
        procs[-1].wait(timeout=10)
        time.sleep(0.5)  # the scorer sees connection errors meanwhile
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, start_new_session=True))
        up()

    up()
    try:
        yield f"redis://127.0.0.1:{port}/0", restart
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)


def _pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.5).ping())
    except redis.ConnectionError:
        return False


def test_redis_restart_loses_memory_and_recovers(own_redis, model_server: ModelServer) -> None:
    url, restart = own_redis
    rig = make_rig(url, model_server.url, model_server.catalog, ab=ONLY_CHAMPION)
    rig.features = features = {}  # the online store's contents, re-written by the stream job

    def read(view: str, keys_):
        return [features.get((view, k), {}) for k in keys_]

    rig.scorer.read_features = read
    recent = [f"i{i:03d}" for i in range(12)]
    features["user_activity", "u1"] = {"user_recent_items": str(recent).replace("'", '"')}
    stop = threading.Event()
    runner = threading.Thread(target=rig.scorer.run, args=(stop,), daemon=True)
    runner.start()
    try:
        rig.signal(user_id="u1")
        _wait(lambda: rig.client.exists(keys.rec_list("champion", "u:u1")), 30, "list")
        assert rig.client.exists(keys.POPULAR)
        restart()
        # memory-only Redis: lists, LKGs, segment lists, the rescore stream and its group
        # (with any unacknowledged signals) are gone
        assert not rig.client.exists(keys.rec_list("champion", "u:u1"))
        _wait(lambda: rig.client.exists(keys.POPULAR), 30, "segment lists re-warmed")
        assert rig.scorer.stats.redis_errors > 0
        rig.signal(user_id="u1")  # the next signal rebuilds the shopper's list
        _wait(lambda: rig.client.exists(keys.rec_list("champion", "u:u1")), 30, "list again")
        assert rig.event_log.pending("scorer") == 0
    finally:
        stop.set()
        runner.join(timeout=10)
