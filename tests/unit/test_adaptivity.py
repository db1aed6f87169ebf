"""Drift measures and champion/challenger decisions on hand-made figures."""

from __future__ import annotations

import numpy as np
import pytest

from flashrec.adaptivity.drift import (
    PSI_DRIFT,
    PSI_WARN,
    catalog_drift,
    ctr_decayed,
    feature_drift,
    psi,
)


def test_psi_is_zero_for_the_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(0)
    base = rng.poisson(3, 20_000)
    assert psi(base, rng.poisson(3, 20_000)) < PSI_WARN
    assert psi(base, rng.poisson(6, 20_000)) > PSI_DRIFT
    assert psi(np.zeros(100), np.zeros(50)) == 0.0
    assert psi(np.zeros(100), np.ones(50)) > PSI_DRIFT
    with pytest.raises(ValueError):
        psi(np.array([]), base)


def test_feature_drift_levels():
    rng = np.random.default_rng(1)
    train = {"views_5m": rng.poisson(2, 5000), "carts": rng.poisson(1, 5000)}
    recent = {"views_5m": rng.poisson(20, 5000), "carts": rng.poisson(1, 5000)}
    levels = {d.feature: d.level for d in feature_drift(train, recent)}
    assert levels == {"views_5m": "drift", "carts": "stable"}


def test_catalog_drift_finds_unknown_and_viral_items():
    train = ["a"] * 50 + ["b"] * 50 + ["c"] * 1
    recent = ["a"] * 40 + ["c"] * 40 + ["new"] * 20
    drift = catalog_drift(train, recent, known_items={"a", "b", "c"})
    assert drift.unknown_item_share == pytest.approx(0.2)
    assert "c" in drift.viral_items and "a" not in drift.viral_items
    assert drift.drifted
    steady = catalog_drift(train, ["a", "b"] * 50, known_items={"a", "b", "c"})
    assert not steady.drifted


def test_ctr_decay_needs_enough_impressions():
    assert ctr_decayed(0.02, 0.05, impressions=1000)
    assert not ctr_decayed(0.02, 0.05, impressions=100)
    assert not ctr_decayed(0.045, 0.05, impressions=1000)


def test_rollout_shadow_canary_promote_queue_and_rollback(tmp_path):
    from flashrec.adaptivity.rollout import (
        Ledger,
        ShadowReport,
        after_canary,
        after_shadow,
        next_queued,
        register,
        set_canary_share,
    )
    from flashrec.adaptivity.sequential import ArmStats, ExperimentDesign

    design = ExperimentDesign(min_sessions=100, min_lists_for_errors=20)
    ledger = Ledger(tmp_path / "decisions.jsonl")
    first = register(ledger.current(), "m1", "dagster:1", "passed its checks", now_ms=1)
    ledger.append(first)
    assert first.state.champion_version == "m1" and first.state.stage == "idle"
    assert first.state.pins() == {"champion": "m1"}
    step = register(first.state, "m2", "dagster:2", "retrained on drift", now_ms=1000)
    ledger.append(step)
    state = step.state
    assert state.stage == "shadow" and state.test_id == "m2@1000"
    assert state.counters_key == "m2@1000:shadow"
    assert state.pins() == {"champion": "m1", "challenger": "m2"}
    assert state.traffic() == ({"champion": 1.0}, ["challenger"])
    # a retrain that lands during the test waits: the model under test stays m2
    queued = register(state, "m3", "dagster:3", "retrained again", now_ms=2000)
    assert queued.action == "queued" and queued.state.challenger_version == "m2"
    assert queued.state.queued_version == "m3" and "never replaced" in queued.reason
    state = queued.state
    clean = ShadowReport(lists=50, errors=0, mean_len=50, champion_mean_len=50, score_std=1.0)
    wait = after_shadow(state, clean, "test", design, min_lists=300)
    assert wait.action == "continue" and wait.state.stage == "shadow"
    big = ShadowReport(lists=400, errors=0, mean_len=50, champion_mean_len=50, score_std=1.0)
    canary = after_shadow(state, big, "test", design, min_lists=300, now_ms=5000)
    assert canary.action == "canary" and canary.state.counters_key == "m2@1000:canary"
    assert canary.state.traffic() == ({"champion": 0.98, "challenger": 0.02}, [])
    wider = set_canary_share(canary.state, 0.5, "operator")
    assert wider.state.traffic()[0] == {"champion": 0.5, "challenger": 0.5}
    champion = ArmStats("champion", "m1", 20_000, 1000)  # 5.0%
    challenger = ArmStats("challenger", "m2", 20_000, 1400)  # 7.0%
    won, decision = after_canary(wider.state, champion, challenger, "test", design)
    assert decision.action == "promote" and won.state.champion_version == "m2"
    assert won.state.stage == "idle" and won.state.queued_version == "m3"
    assert decision.uplift_pct == pytest.approx(40.0)
    follow = next_queued(won.state, "test", now_ms=9000)
    assert follow is not None and follow.state.challenger_version == "m3"
    assert follow.state.test_id == "m3@9000" and follow.state.queued_version is None
    # a broken challenger fails its shadow checks and is rolled back
    broken = ShadowReport(lists=100, errors=40, mean_len=50, champion_mean_len=50, score_std=1.0)
    back = after_shadow(follow.state, broken, "test", design)
    assert back.action == "rollback" and back.state.stage == "idle"
    assert back.state.champion_version == "m2" and "errors_within_guardrail" in back.reason
    assert [r["action"] for r in ledger.records()] == ["champion", "shadow"]


def test_rollout_state_round_trips_through_json():
    from flashrec.adaptivity.rollout import RolloutState

    state = RolloutState("m1", "m2", "canary", "m2@5", 7, 0.1, "m3", ("shadow", "canary"))
    assert RolloutState.from_json(state.to_json()) == state


def test_drift_report_splits_windows_on_event_time():
    from flashrec.adaptivity.report import build_report

    rng = np.random.default_rng(3)
    start = np.datetime64("2026-11-22T00:00:00", "us")
    minutes = np.sort(rng.uniform(0, 600, 6000)).astype(int)
    times = start + minutes.astype("timedelta64[m]")
    surge = minutes > minutes.max() - 120  # the last 2 hours: a flash sale
    views = np.where(surge, rng.poisson(25, 6000), rng.poisson(3, 6000)).astype(float)
    price = rng.normal(50, 5, 6000)
    items = np.where(
        surge, rng.choice(["hot", "new-1", "a"], 6000), rng.choice(["a", "b", "c"], 6000)
    )
    report = build_report(
        times, {"item_views_5m": views, "item_price": price}, times, items.tolist(), recent_hours=2
    )
    assert np.datetime64(report.cutoff, "us") == times.max() - np.timedelta64(2, "h")
    assert report.recent_rows == int(surge.sum())
    assert [f.feature for f in report.drifted_features] == ["item_views_5m"]
    assert report.catalog.unknown_item_share > 0.5 and report.drift_detected
    assert "item_views_5m psi=" in report.summary()
    calm = build_report(times, {"item_price": price}, times, ["a"] * 6000, recent_hours=2)
    assert not calm.drift_detected and calm.summary() == "no drift"


def test_candidate_positions_and_online_decay():
    from flashrec.adaptivity.drift import OnlineDecay, candidate_drift, candidate_positions

    def recommend(prefixes, k):
        return [["a", "b", "c"][:k] for _ in prefixes]

    steady = candidate_positions(recommend, [["x", "a"], ["y", "b"], ["z", "c"]] * 40, k=3)
    assert sorted(set(steady.tolist())) == [1.0, 2.0, 3.0]
    shifted = candidate_positions(recommend, [["x", "q"], ["y", "r"]] * 60, k=3)
    assert set(shifted.tolist()) == {4.0}  # missed: k + 1
    drift = candidate_drift(steady, shifted)
    assert drift.feature == "candidate_position" and drift.level == "drift"
    assert candidate_drift(steady, np.empty(0)) is None
    assert OnlineDecay("champion", 0.02, 0.05, 1000).decayed
    assert not OnlineDecay("champion", 0.049, 0.05, 1000).decayed
    assert OnlineDecay(
        "champion", 0.05, 0.05, 1000, conversion=0.01, baseline_conversion=0.03
    ).decayed


def test_a_retrain_needs_a_significant_candidate_slide():
    """PSI over a few dozen positions passes its threshold by chance; the retrain flag also
    needs the KS test to reject, which a real slide (new items, positions at k+1) does."""
    from datetime import datetime

    from flashrec.adaptivity.drift import CatalogDrift, FeatureDrift
    from flashrec.adaptivity.report import DriftReport

    def report(ks_p: float) -> DriftReport:
        drift = FeatureDrift("candidate_position", 0.4, 0.3, ks_p)
        return DriftReport(datetime(2026, 1, 1), 500, 500, [drift], CatalogDrift(0.0))

    assert report(1e-6).model_stale
    assert not report(0.2).model_stale  # PSI alone: reported as drift, not retrained on
    assert report(0.2).drift_detected


def test_online_decay_alone_waits_for_the_lake_before_a_retrain():
    """A CTR decay seen live, on a lake that does not hold the traffic yet, launches no
    retrain (it would learn nothing new); the lake's catalog drift then does."""
    from datetime import datetime

    from flashrec.adaptivity.drift import CatalogDrift
    from flashrec.adaptivity.report import DriftReport

    def report(unknown_share: float) -> DriftReport:
        catalog = CatalogDrift(unknown_share, unknown_events=900, unknown_items=20)
        return DriftReport(datetime(2026, 1, 1), 500, 500, [], catalog)

    retrain, why = report(0.0).model_stale, report(0.0).retrain_reason(["champion"])
    assert not retrain and "waiting for the lake" in why
    retrain, why = report(0.9).model_stale, report(0.9).retrain_reason(["champion"])
    assert retrain and why.startswith("catalog drift: ") and "unknown-item traffic 90.0%" in why
    assert (report(0.0).model_stale, report(0.0).retrain_reason()) == (
        False,
        "no drift a retrain can fix",
    )


def test_catalog_drift_retrains_once_new_items_have_events_to_learn_from():
    """A sale's first seconds in the lake already drift (most recent traffic on new
    items); the retrain waits until the new items have NEW_ITEM_MIN_EVENTS each. A known
    item gone viral needs no wait: the model has it already."""
    from datetime import datetime

    from flashrec.adaptivity.drift import NEW_ITEM_MIN_EVENTS, catalog_drift
    from flashrec.adaptivity.report import DriftReport

    known = {f"old-{i}" for i in range(50)}
    history = [f"old-{i % 50}" for i in range(5000)]

    def report(recent: list[str]) -> DriftReport:
        catalog = catalog_drift(history, recent, known)
        return DriftReport(datetime(2026, 1, 1), 500, 500, [], catalog)

    new = [f"new-{i}" for i in range(10)]
    calm = [f"old-{i % 50}" for i in range(400)]
    early = report(calm + new * 5)  # 5 events per new item: drifted, not yet learnable
    assert early.catalog.drifted and early.catalog.unknown_items == 10
    assert early.catalog.unknown_events == 50 and early.catalog.events_per_unknown_item == 5
    retrain, why = early.model_stale, early.retrain_reason()
    assert not retrain and f"waiting for {NEW_ITEM_MIN_EVENTS} each" in why
    assert early.drift_detected  # still reported, and its check fails
    later = report(calm + new * NEW_ITEM_MIN_EVENTS)
    assert later.model_stale and later.retrain_reason().startswith("catalog drift: ")
    viral = report(calm + ["old-7"] * 200)  # a known item jumps: no events to wait for
    assert viral.catalog.viral_known == 1 and viral.model_stale
