"""The background scorer on real Redis (db 15) against a real ``bentoml serve`` model service.

Signals go into a rescore stream unique to this run; online features come from a small
Redis-JSON stand-in for Feast (``redis_json_reader``: same ``(view, keys) -> rows`` shape as
``feature_repo.store.read_online``), so the test needs no ``feast apply`` (~30 s).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from flashrec.eventlog.redis_streams import RedisStreamsEventLog
from flashrec.recsys.model import TwoTierConfig
from flashrec.recsys.ranker import RankerConfig
from flashrec.scoring.catalog import Catalog
from flashrec.scoring.catalog_model import CatalogModel, training_data
from flashrec.scoring.model_client import ModelClient
from flashrec.scoring.scorer import Scorer, ScorerConfig
from flashrec.serving import cache, keys
from flashrec.settings import PROJECT_ROOT, Settings
from tests import synthetic
from tests.conftest import TEST_REDIS_URL
from tests.kafka_broker import free_port
from tests.tiny_models import tiny_two_tier

pytestmark = pytest.mark.integration


def small_config() -> TwoTierConfig:
    return tiny_two_tier(RankerConfig(num_rounds=20, early_stopping=5, max_depth=4))


@dataclass
class ModelServer:
    url: str
    champion: str
    challenger: str
    catalog: Catalog
    artifact: Path

    @property
    def catalog_version(self) -> str:
        return self.champion


class RedisJsonFeatures:
    """Online features as JSON in one Redis hash per view (a stand-in for Feast)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.r, self.prefix = client, prefix

    def put(self, view: str, key: str, row: dict[str, Any]) -> None:
        self.r.hset(f"{self.prefix}:{view}", key, json.dumps(row))

    def __call__(self, view: str, keys_: Sequence[str]) -> list[dict[str, Any]]:
        raw = self.r.hmget(f"{self.prefix}:{view}", list(keys_))
        return [json.loads(v) if v else {} for v in raw]


def redis_json_reader(settings: Settings) -> RedisJsonFeatures:
    """CLI factory (``--features tests.integration.test_scorer:redis_json_reader``)."""
    return RedisJsonFeatures(
        redis.Redis.from_url(settings.redis_url), settings.rescore_stream + ":features"
    )


def warm_user(features: RedisJsonFeatures, uid: str, n: int, start: int = 0) -> None:
    """A user with ``n`` distinct recent items (n >= 10: personalized; 1-9: content)."""
    recent = [synthetic.item_id((start + i) % 60) for i in range(n)]
    features.put("user_activity", uid, {"user_recent_items": json.dumps(recent)})


_PREPARED: dict[str, Any] = {}


def _prepare_models() -> dict[str, Any]:
    """Fit once per test session, register champion + challenger in a BentoML home.

    Cached in this module so test_serving_faults (which imports it) reuses the fit and the
    store; only ``bentoml serve`` is started per module.
    """
    if _PREPARED:
        return _PREPARED
    tmp = Path(tempfile.mkdtemp(prefix="flashrec-models-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    data = training_data(synthetic.interactions(n_sessions=250))
    model = CatalogModel.fit(data.sessions, data.catalog, config=small_config())
    champion = model.save(tmp / "champion")
    champion_version = model.model_version
    model.model_version = champion_version + "-b"
    challenger = model.save(tmp / "challenger")
    home = tmp / "bentoml"
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        "REDIS_URL": TEST_REDIS_URL,  # the service follows the rollout state there
        "FLASHREC_MODEL_WATCH_INTERVAL_S": "0.2",
    }
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bentos.model_registry",
            "register",
            "--champion",
            str(champion),
            "--challenger",
            str(challenger),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    _PREPARED.update(
        env=env,
        champion=champion_version,
        challenger=model.model_version,
        catalog=data.catalog,
        artifact=champion,
    )
    return _PREPARED


def start_model_service(tmp: Path) -> tuple[subprocess.Popen, ModelServer, Path]:
    """``bentoml serve`` the prepared champion + challenger on a free port."""
    prep = _prepare_models()
    env = prep["env"]
    port = free_port()
    log_file = open(tmp / "serve.log", "wb")  # noqa: SIM115 - lives as long as the server
    bentoml = Path(sys.executable).with_name("bentoml")
    proc = subprocess.Popen(
        [
            str(bentoml),
            "serve",
            "bentos.model_service:ModelService",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"bentoml serve exited: {(tmp / 'serve.log').read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the model service was not ready within 90 s")
        time.sleep(0.3)
    server = ModelServer(
        url, prep["champion"], prep["challenger"], prep["catalog"], prep["artifact"]
    )
    return proc, server, Path(env["BENTOML_HOME"])


def stop_process(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class Rig:
    client: redis.Redis
    stream: str
    features: RedisJsonFeatures
    scorer: Scorer
    event_log: RedisStreamsEventLog

    def signal(self, **fields: str) -> str:
        fields.setdefault("reason", "view")
        return self.client.xadd(self.stream, fields).decode()

    def read(self, variant: str, shopper: str) -> cache.CachedList | None:
        return cache.decode_list(self.client.get(keys.rec_list(variant, shopper)))

    def drain(self) -> None:
        while self.scorer.step() is not None:
            pass


def make_rig(
    redis_url: str,
    server_url: str,
    catalog: Catalog,
    *,
    ab: Any = None,
    consumer: str = "c1",
    stream: str | None = None,
    catalog_version: str = "catalog",
) -> Rig:
    stream = stream or f"test:rescore:{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    features = RedisJsonFeatures(client, stream + ":features")
    event_log = RedisStreamsEventLog(redis_url, stream, stream + ":dlq")
    scorer = Scorer(
        client,
        event_log,
        features,
        catalog,
        rank=ModelClient(server_url).rank,
        config=ScorerConfig(
            consumer=consumer, block_ms=50, retry_interval_s=0.2, segment_interval_s=3600
        ),
        rescore_stream=stream,
        catalog_version=catalog_version,
        ab_config=ab,
    )
    return Rig(client, stream, features, scorer, event_log)


TWO_SERVED = lambda: ({"champion": 0.5, "challenger": 0.5}, frozenset())  # noqa: E731


def test_signals_to_lists_per_variant(redis_url: str, model_server: ModelServer) -> None:
    rig = make_rig(
        redis_url,
        model_server.url,
        model_server.catalog,
        ab=TWO_SERVED,
        catalog_version=model_server.champion,
    )
    uid = uuid.uuid4().hex[:8]
    warm_user(rig.features, f"{uid}-warm", 12)
    warm_user(rig.features, f"{uid}-few", 3, start=20)
    rig.scorer.start()
    t0 = time.time()
    for who in ("warm", "few"):
        rig.signal(user_id=f"{uid}-{who}")
    rig.signal(session_id=f"{uid}-anon")  # no features: segment tier, nothing to write
    rig.drain()
    latency_ms = (time.time() - t0) * 1000
    for variant, version in (
        ("champion", model_server.champion),
        ("challenger", model_server.challenger),
    ):
        warm = rig.read(variant, f"u:{uid}-warm")
        assert warm is not None and warm.tier == "personalized"
        assert warm.model_version == version and warm.variant == variant
        assert warm.n_interactions == 12 and len(warm.items) > 0
        assert abs(warm.computed_at - time.time() * 1000) < 60_000
        few = rig.read(variant, f"u:{uid}-few")
        assert few is not None and few.tier == "content"
        assert few.model_version == f"content@{model_server.catalog_version}"
    assert rig.read("champion", f"s:{uid}-anon") is None
    assert rig.event_log.pending("scorer") == 0 and rig.event_log.lag("scorer") == 0
    print(f"\nsignal -> lists written (3 shoppers, 2 variants): {latency_ms:.0f} ms")


def test_personalized_queries_carry_the_users_feature_row(
    redis_url: str, model_server: ModelServer
) -> None:
    """The scorer hands the model service the user's online row (the ranker's shopper
    features); the service accepts it. Anonymous shoppers send none."""
    rig = make_rig(
        redis_url,
        model_server.url,
        model_server.catalog,
        ab=lambda: ({"champion": 1.0}, frozenset()),
    )
    client = ModelClient(model_server.url)
    sent: list[dict[str, Any]] = []

    def spy(queries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        sent.extend(queries)
        return client.rank(queries)

    rig.scorer.rank = spy
    uid = uuid.uuid4().hex[:8]
    recent = [synthetic.item_id(i) for i in range(12)]
    row = {
        "user_recent_items": json.dumps(recent),
        "user_views_1h": 7,
        "user_purchases_total": 2,
        "user_top_category": "c1",
        "user_top_category_share": 0.5,
    }
    rig.features.put("user_activity", uid, row)
    rig.features.put(
        "session_activity",
        f"{uid}-anon",
        {"session_events": 12, "session_recent_items": json.dumps(recent[:10])},
    )
    rig.scorer.start()
    rig.signal(user_id=uid)
    rig.signal(session_id=f"{uid}-anon")
    rig.drain()
    by_items = {len(q["recent_items"]): q for q in sent}
    assert by_items[12]["user"] == {k: v for k, v in row.items() if k != "user_recent_items"}
    assert by_items[10]["user"] is None
    assert rig.read("champion", f"u:{uid}").tier == "personalized"
    assert rig.read("champion", f"s:{uid}-anon").tier == "personalized"


def test_throughput_through_model_service(redis_url: str, model_server: ModelServer) -> None:
    rig = make_rig(
        redis_url,
        model_server.url,
        model_server.catalog,
        ab=lambda: ({"champion": 1.0}, frozenset()),
    )
    uid = uuid.uuid4().hex[:8]
    n = 400
    for i in range(n):
        warm_user(rig.features, f"{uid}-{i}", 10 + i % 10, start=i)
        rig.signal(user_id=f"{uid}-{i}")
    rig.scorer.log.ensure_group("scorer")
    t0 = time.perf_counter()
    rig.drain()
    elapsed = time.perf_counter() - t0
    assert rig.scorer.stats.lists_written == n
    print(f"\npersonalized scoring: {n} shoppers in {elapsed:.2f} s = {n / elapsed:.0f}/s")


def test_restart_reprocesses_unacked(redis_url: str, model_server: ModelServer) -> None:
    rig = make_rig(redis_url, model_server.url, model_server.catalog, ab=TWO_SERVED)
    uid = uuid.uuid4().hex[:8]
    warm_user(rig.features, uid, 11)
    rig.event_log.ensure_group("scorer")
    rig.signal(user_id=uid)
    taken = rig.event_log.read_group("scorer", "c1", 10)  # the "crashed" scorer took it
    assert len(taken) == 1 and rig.event_log.pending("scorer") == 1
    assert rig.read("champion", f"u:{uid}") is None
    again = make_rig(
        redis_url, model_server.url, model_server.catalog, ab=TWO_SERVED, stream=rig.stream
    )
    again.scorer.start()  # same consumer name: its pending entries come back first
    assert again.read("champion", f"u:{uid}") is not None
    assert again.read("challenger", f"u:{uid}") is not None
    assert again.event_log.pending("scorer") == 0


def test_duplicate_signals_one_visible_write(redis_url: str, model_server: ModelServer) -> None:
    rig = make_rig(
        redis_url,
        model_server.url,
        model_server.catalog,
        ab=lambda: ({"champion": 1.0}, frozenset()),
    )
    uid = uuid.uuid4().hex[:8]
    warm_user(rig.features, uid, 15)
    rig.scorer.start()
    for _ in range(5):
        rig.signal(user_id=uid)
    rig.drain()
    first = rig.client.get(keys.rec_list("champion", f"u:{uid}"))
    assert rig.scorer.stats.lists_written == 1  # five signals, one computation, one write
    assert rig.client.get(keys.last_known_good("champion", f"u:{uid}")) is None
    for _ in range(3):  # later duplicates: same list, nothing rewritten, LKG not clobbered
        rig.signal(user_id=uid)
    rig.drain()
    assert rig.client.get(keys.rec_list("champion", f"u:{uid}")) == first
    assert rig.client.get(keys.last_known_good("champion", f"u:{uid}")) is None
    assert rig.scorer.stats.lists_unchanged == 1
    assert rig.event_log.pending("scorer") == 0


def test_shadow_variant_lists_from_redis_ab_config(
    redis_url: str, model_server: ModelServer
) -> None:
    rig = make_rig(redis_url, model_server.url, model_server.catalog)  # reads flashrec:ab:*
    cache.set_ab_shares(rig.client, {"champion": 1.0}, shadow=["challenger"])
    try:
        uid = uuid.uuid4().hex[:8]
        warm_user(rig.features, uid, 10)
        rig.scorer.start()
        rig.signal(user_id=uid)
        rig.drain()
        shadow = rig.read("challenger", f"u:{uid}")
        assert shadow is not None and shadow.model_version == model_server.challenger
        assert rig.read("champion", f"u:{uid}").model_version == model_server.champion
    finally:
        rig.client.delete(keys.AB_SHARES, keys.AB_SHADOW)


def test_segment_lists_skip_sold_out(redis_url: str, model_server: ModelServer) -> None:
    rig = make_rig(redis_url, model_server.url, model_server.catalog)
    top = model_server.catalog.popular(1)[0]
    cache.mark_sold_out(rig.client, [top])
    try:
        assert rig.scorer.refresh_segments() > 5
        popular = cache.decode_list(rig.client.get(keys.POPULAR))
        assert popular is not None and top not in popular.items and popular.tier == "segment"
        for key in (
            keys.TRENDING,
            keys.segment("category", "c0"),
            keys.segment("device", "mobile"),
            keys.segment("referrer", "search"),
        ):
            assert cache.decode_list(rig.client.get(key)) is not None, key
    finally:
        rig.client.srem(keys.SOLDOUT, top)


def test_poison_shoppers_are_dead_lettered_and_the_batch_goes_on(
    redis_url: str, model_server: ModelServer
) -> None:
    """One shopper whose feature read fails, one whose query the model service refuses
    (4xx) and one whose query makes the service's model call fail for its whole batch: each
    goes to the dead-letter stream with the reason, the other shoppers of the same batch
    get their lists, and every signal is acknowledged (nothing is retried forever)."""
    from flashrec.scoring.model_client import QueryRejected

    rig = make_rig(
        redis_url,
        model_server.url,
        model_server.catalog,
        ab=lambda: ({"champion": 1.0}, frozenset()),
    )
    uid = uuid.uuid4().hex[:8]
    good = [f"{uid}-good{i}" for i in range(3)]
    for i, user in enumerate(good):
        warm_user(rig.features, user, 12, start=i)
    for user in (f"{uid}-refused", f"{uid}-crash"):
        warm_user(rig.features, user, 12)
        recent = [synthetic.item_id(i) for i in range(11)] + [f"poison-{user}"]
        rig.features.put("user_activity", user, {"user_recent_items": json.dumps(recent)})
    features, client = rig.features, ModelClient(model_server.url)

    def reader(view: str, keys_: Sequence[str]) -> list[dict[str, Any]]:
        if any(k.endswith("-badrow") for k in keys_):
            raise ValueError("cannot decode the stored row")
        return features(view, keys_)

    def rank(queries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        items = {i for q in queries for i in q["recent_items"]}
        if f"poison-{uid}-refused" in items:
            raise QueryRejected("HTTP 422: refused")
        answers = client.rank(queries)
        if f"poison-{uid}-crash" in items:  # the service fails the whole model call
            return [
                {**a, "items": [], "scores": [], "error": "ValueError: bad row"} for a in answers
            ]
        return answers

    rig.scorer.read_features, rig.scorer.rank = reader, rank
    rig.scorer.start()
    for user in (*good, f"{uid}-badrow", f"{uid}-refused", f"{uid}-crash"):
        rig.signal(user_id=user)
    rig.drain()
    for user in good:
        got = rig.read("champion", f"u:{user}")
        assert got is not None and got.tier == "personalized", user
    for user in ("badrow", "refused", "crash"):
        assert rig.read("champion", f"u:{uid}-{user}") is None
    letters = {json.loads(d.raw)["shopper"]: d for d in rig.event_log.dead_letters(10)}
    assert set(letters) == {f"u:{uid}-badrow", f"u:{uid}-refused", f"u:{uid}-crash"}
    assert all(d.source == "scorer" for d in letters.values())
    assert letters[f"u:{uid}-badrow"].reason.startswith("features: ValueError")
    assert letters[f"u:{uid}-refused"].reason.startswith("model: QueryRejected")
    assert letters[f"u:{uid}-crash"].reason == "model: ValueError: bad row"
    assert rig.scorer.stats.dead_lettered == 3
    assert rig.event_log.pending("scorer") == 0 and rig.event_log.lag("scorer") == 0
