"""The model lifecycle in running services (real ``bentoml serve`` and real Redis):
the model service follows the versions the rollout pins, with no failed or mixed request
during a swap; a failing challenger fails only its own lists, which the scorer counts
against it; shadow lists are computed and measured; a category's trend signal re-scores
its active shoppers."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
import uuid

import httpx
import numpy as np
import pytest
import redis

from flashrec.adaptivity import test_counters
from flashrec.adaptivity.rollout import RolloutState
from flashrec.adaptivity.rollout_store import write_state
from flashrec.scoring.catalog_model import CatalogModel
from flashrec.serving import keys
from flashrec.settings import PROJECT_ROOT
from tests import synthetic
from tests.integration.test_scorer import ModelServer, make_rig, warm_user

pytestmark = pytest.mark.integration


def _info(server: ModelServer) -> dict:
    return httpx.post(server.url + "/info", json={}, timeout=10).json()


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _query(variant: str) -> dict:
    """Known items (synthetic catalog): the models rank them, not just popularity."""
    return {"recent_items": [synthetic.item_id(i) for i in (1, 2, 3)], "k": 5, "variant": variant}


def test_pins_swap_models_without_failed_or_mixed_requests(redis_url, model_server):
    client = redis.Redis.from_url(redis_url)
    v1, v2 = model_server.champion, model_server.challenger
    answers: list[tuple[int, set[str]]] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=model_server.url, timeout=10) as http:
            while not stop.is_set():
                resp = http.post("/rank", json={"queries": [_query("champion")] * 4})
                versions = {a["model_version"] for a in resp.json()} if resp.is_success else set()
                answers.append((resp.status_code, versions))

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        # promote v2: the champion variant is answered by v2 within a second or so
        write_state(client, RolloutState(v2))
        _wait_for(lambda: _info(model_server)["versions"] == {"champion": v2}, 60, "the swap")
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(10)
        # back to what the other tests expect (v1 champion, v2 challenger), then let the
        # store's labels (the same pins) take over again
        write_state(client, RolloutState(v1, v2, "shadow", "t@1"))
        _wait_for(lambda: _info(model_server)["versions"].get("champion") == v1, 60, "restore")
        client.delete(keys.ROLLOUT_STATE, keys.AB_SHARES, keys.AB_SHADOW)
    assert answers and all(code == 200 for code, _ in answers)
    assert all(len(v) == 1 for _, v in answers), "a batch answered by two models"
    seen = {next(iter(v)) for _, v in answers}
    assert seen == {v1, v2}
    assert _info(model_server)["swaps"] >= 2


def _failing_copy(server: ModelServer) -> CatalogModel:
    """The champion with a truncated popularity array (a corrupted artifact): building the
    ranker's features indexes past it, so every ranking raises IndexError."""
    model = CatalogModel.load(server.artifact)
    model.model.generator.pop = np.zeros(2)
    model.model_version = f"{server.champion}-failing"
    return model


def test_a_failing_challenger_fails_only_its_own_lists(redis_url, model_server, tmp_path):
    from tests.integration.test_scorer import _prepare_models

    client = redis.Redis.from_url(redis_url)
    failing = _failing_copy(model_server)
    # registered by the CLI in the service's own environment: this process's BentoML may
    # already hold another test's store (BENTOML_HOME is read once per process)
    artifact = failing.save(tmp_path / "failing")
    subprocess.run(
        [sys.executable, "-m", "bentos.model_registry", "register", "--challenger", str(artifact)],
        cwd=PROJECT_ROOT,
        env=_prepare_models()["env"],
        check=True,
        capture_output=True,
    )
    state = RolloutState(model_server.champion, failing.model_version, "canary", "f@1", 0, 0.5)
    write_state(client, state)
    try:
        _wait_for(
            lambda: _info(model_server)["versions"].get("challenger") == failing.model_version,
            60,
            "the failing challenger",
        )
        resp = httpx.post(
            model_server.url + "/rank",
            json={"queries": [_query("champion"), _query("challenger")]},
            timeout=10,
        ).json()
        assert resp[0]["items"] and resp[0]["error"] is None
        assert resp[1]["items"] == [] and "IndexError" in resp[1]["error"]

        rig = make_rig(redis_url, model_server.url, model_server.catalog)
        uid = uuid.uuid4().hex[:8]
        warm_user(rig.features, uid, 12)
        rig.scorer.start()
        rig.signal(user_id=uid)
        rig.drain()
        assert rig.read("champion", f"u:{uid}").model_version == model_server.champion
        assert rig.read("challenger", f"u:{uid}") is None
        assert rig.event_log.pending("scorer") == 0  # not retried: only the challenger failed
        arm = test_counters.read_arm(
            client, state.counters_key, "challenger", failing.model_version
        )
        assert arm.lists >= 1 and arm.errors == arm.lists
        champ = test_counters.read_arm(
            client, state.counters_key, "champion", model_server.champion
        )
        assert champ.lists >= 1 and champ.errors == 0
    finally:
        write_state(
            client, RolloutState(model_server.champion, model_server.challenger, "shadow", "t@1")
        )
        _wait_for(
            lambda: _info(model_server)["versions"].get("challenger") == model_server.challenger,
            60,
            "restore",
        )
        client.delete(keys.ROLLOUT_STATE, keys.AB_SHARES, keys.AB_SHADOW)


def test_shadow_lists_are_measured_and_trend_signals_reach_a_category(redis_url, model_server):
    client = redis.Redis.from_url(redis_url)
    state = RolloutState(model_server.champion, model_server.challenger, "shadow", "s@1")
    write_state(client, state)
    try:
        _wait_for(
            lambda: _info(model_server)["versions"].get("challenger") == model_server.challenger,
            60,
            "the challenger",
        )
        rig = make_rig(redis_url, model_server.url, model_server.catalog)
        uid = uuid.uuid4().hex[:8]
        warm_user(rig.features, uid, 12)
        rig.scorer.start()
        rig.signal(user_id=uid)
        rig.drain()
        assert rig.read("challenger", f"u:{uid}") is not None  # computed, in the shadow key
        report = test_counters.read_shadow(client, state.counters_key, "champion", "challenger")
        assert report.lists >= 1 and report.errors == 0 and report.mean_len > 0
        assert 0.0 <= report.overlap_at_10 <= 1.0 and report.score_std > 0
        # the user's newest items belong to a category: its trend signal re-scores them
        first = rig.read("champion", f"u:{uid}").computed_at
        attrs = model_server.catalog.attributes()
        category = next(attrs[i] for i in json_recent(rig, uid)[:3] if i in attrs)
        assert f"u:{uid}" in rig.scorer.active.in_category(category)
        time.sleep(0.01)
        rig.client.xadd(rig.stream, {"category": category, "reason": "trending:x"})
        rig.scorer.config = dataclasses.replace(rig.scorer.config, unchanged_refresh_s=0.0)
        rig.drain()
        assert rig.read("champion", f"u:{uid}").computed_at > first
        assert rig.event_log.pending("scorer") == 0
    finally:
        client.delete(keys.ROLLOUT_STATE, keys.AB_SHARES, keys.AB_SHADOW)


def json_recent(rig, uid: str) -> list[str]:
    return json.loads(rig.features("user_activity", [uid])[0]["user_recent_items"])
