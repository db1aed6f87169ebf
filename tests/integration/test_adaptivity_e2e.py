"""End to end: a flash sale shifts behaviour, drift is detected, the sensor fires, a
challenger is trained and routed, and the rollout decision is taken; then a broken
challenger is rolled back. Real Spark, Delta, Dagster, Redis and BentoML model store."""

from __future__ import annotations

import json
import random

import dagster as dg
import pytest
import redis

from assets.landing import SOURCE
from flashrec.adaptivity.replay import record, replay
from flashrec.adaptivity.rollout import Ledger
from flashrec.serving import cache
from flashrec.settings import Settings
from orchestration.demo import MODELS, selection_of
from spark_jobs.bronze import landing_days

pytestmark = pytest.mark.integration

SIMULATION = {
    "FLASHREC_SIM_USERS": "800",
    "FLASHREC_SIM_ITEMS": "200",
    "FLASHREC_SIM_DAYS": "2",
    "FLASHREC_SIM_SESSIONS_PER_DAY": "900",
    "FLASHREC_DRIFT_RECENT_HOURS": "6",
    "FLASHREC_AB_MIN_SESSIONS": "50",
    "FLASHREC_AUTOML_TRIALS": "3",
}


FEATURE_TABLES = ["features_item_activity", "features_session_activity", "features_user_activity"]


def run(defs: dg.Definitions, instance, selection: str, partition: str | None = None):
    job = defs.resolve_implicit_global_asset_job_def()
    keys = selection_of(selection).resolve(defs.resolve_asset_graph())
    result = job.execute_in_process(
        instance=instance, asset_selection=list(keys), partition_key=partition, raise_on_error=False
    )
    assert result.success, f"{selection} {partition or ''} failed"
    return result


def metadata(instance, key: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def unseen_sessions(settings: Settings) -> dict[str, list[str]]:
    """The newest sessions, held out of every model's training (see model_training_set):
    the flash sale's last shoppers, in event order, that no model has seen."""
    from deltalake import DeltaTable

    rows = (
        DeltaTable(str(settings.table_path("gold/interactions")))
        .to_pyarrow_table(columns=["session_id", "event_time", "event_seq", "item_id"])
        .to_pylist()
    )
    sessions: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: (r["event_time"], r["event_seq"])):
        items = sessions.setdefault(r["session_id"], [])
        if not items or items[-1] != r["item_id"]:
            items.append(r["item_id"])
    usable = [k for k, v in sessions.items() if len(v) >= 2]
    held_out = usable[int(len(usable) * 0.9) :]  # split_sessions' hold-out share
    return {k: sessions[k] for k in held_out}


@pytest.fixture(scope="module")
def world(spark, redis_url, tmp_path_factory):
    patch = pytest.MonkeyPatch()
    for key, value in SIMULATION.items():
        patch.setenv(key, value)
    patch.setenv("FLASHREC_VAR_DIR", str(tmp_path_factory.mktemp("adaptivity")))
    patch.setenv("BENTOML_HOME", str(tmp_path_factory.mktemp("bentoml")))
    patch.setenv("REDIS_URL", redis_url)
    from orchestration.definitions import defs

    yield defs, dg.DagsterInstance.ephemeral(), Settings.from_env()
    patch.undo()


def test_flash_sale_drift_retrain_promotion_and_rollback(world, redis_url):
    defs, instance, settings = world
    client = redis.Redis.from_url(redis_url)
    run(defs, instance, "group:landing")
    day1, day2 = landing_days(settings, SOURCE)[:2]

    # Day 1 only: the lake, features and a first model (the champion).
    run(defs, instance, "bronze_events", day1)
    run(defs, instance, "group:silver", day1)
    run(defs, instance, "group:gold")
    run(defs, instance, [*FEATURE_TABLES, "feast_registry"])  # the training set reads Feast
    champion = run(defs, instance, MODELS)
    assert champion.success
    assert "champion" in metadata(instance, "registered_model")["action"]
    first_study = metadata(instance, "ranker_study")["study"]

    # Day 2 lands with the flash sale: drift is detected, with its figures and plot.
    run(defs, instance, "bronze_events", day2)
    run(defs, instance, "group:silver", day1)  # folds day 1's late arrivals
    run(defs, instance, "group:silver", day2)
    run(defs, instance, "group:gold")
    run(defs, instance, FEATURE_TABLES)
    run(defs, instance, "drift_report")
    drift = metadata(instance, "drift_report")
    assert drift["drift_detected"], drift["summary"]
    print("DRIFT", drift["summary"], "| unknown items", drift["unknown_item_share"])
    print(drift["features"])

    # The sensor fires once for this surge and launches the retraining job.
    from orchestration.sensors import retrain_on_drift

    fired = retrain_on_drift(dg.build_sensor_context(instance=instance))
    assert len(fired.run_requests) == 1
    again = retrain_on_drift(dg.build_sensor_context(instance=instance, cursor=fired.cursor))
    assert not again.run_requests
    retrain = defs.resolve_job_def("retrain_models").execute_in_process(
        instance=instance, tags=fired.run_requests[0].tags
    )
    assert retrain.success
    # The retrain's study is its own (new data), warm-started from the first one.
    study = metadata(instance, "ranker_study")
    assert study["study"] != first_study and study["warm_started_from"] == first_study
    assert study["warm_start_enqueued"] >= 1 and study["trials_to_within_1pct"] >= 1
    print(
        "STUDY",
        study["study"],
        f"warm-started from {first_study} ({study['warm_start_enqueued']} enqueued):",
        f"within 1% of its best after {study['trials_to_within_1pct']} of {study['trials']}",
    )
    registered = metadata(instance, "registered_model")
    assert "challenger in shadow" in registered["action"]
    shares, shadow = cache.read_ab_config(client)
    assert shares == {"champion": 1.0} and "challenger" in shadow

    # Shoppers of the sale, replayed through both models (50/50 to reach the sample).
    from bentos import model_registry

    arms = {}
    for variant in ("champion", "challenger"):
        model = model_registry.load(variant)
        arms[variant] = lambda prefixes, k, m=model: [
            [i for i, _ in row] for row in m.recommend_batch(prefixes, k)
        ]
    counts = replay(unseen_sessions(settings), arms, {"champion": 0.5, "challenger": 0.5})
    print("REPLAY", counts)
    record(client, counts)
    run(defs, instance, "model_rollout")  # shadow -> canary
    assert metadata(instance, "model_rollout")["stage"] == "canary"
    assert cache.read_ab_config(client)[0]["challenger"] == pytest.approx(0.02)
    run(defs, instance, "model_rollout")  # the decision
    decided = metadata(instance, "model_rollout")
    print("DECISION", decided["action"], decided["reason"])
    assert decided["action"] in {"promote", "rollback"}

    # A broken challenger (trained on shuffled sessions) loses and is rolled back.
    ledger = Ledger(settings.artifacts_dir / "rollout" / "decisions.jsonl")
    champion_version = ledger.current("?").champion_version
    broken = model_registry.load("champion")
    rng = random.Random(0)
    items = list(broken.vocab.ids)
    arms = {
        "champion": arms["champion"] if decided["action"] == "rollback" else arms["challenger"],
        "challenger": lambda prefixes, k: [rng.sample(items, k) for _ in prefixes],
    }
    for key in client.scan_iter("flashrec:ab:*"):
        client.delete(key)
    from flashrec.adaptivity.rollout import after_shadow, start_challenger

    state = start_challenger(ledger.current("?"), "broken-1", "test", "corrupted retrain").state
    ledger.append(after_shadow(state, 500, 0, "test"))
    counts = replay(unseen_sessions(settings), arms, {"champion": 0.5, "challenger": 0.5})
    print("REPLAY broken", counts)
    record(client, counts, prefix="broken")
    run(defs, instance, "model_rollout")
    rolled = metadata(instance, "model_rollout")
    print("DECISION broken", rolled["action"], rolled["reason"])
    assert rolled["action"] == "rollback"
    assert ledger.current("?").champion_version == champion_version
    actions = [r["action"] for r in ledger.records()]
    assert "shadow" in actions and "canary" in actions and "rollback" in actions
    print("LEDGER", json.dumps([(r["action"], r["reason"]) for r in ledger.records()]))
