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
from flashrec.adaptivity.promotion import ArmStats, decide, two_proportion_z


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


def arm(variant, sessions, conversions, **kw):
    return ArmStats(variant, f"{variant}-v1", sessions, conversions, **kw)


def test_promote_rollback_continue():
    champion = arm("champion", 5000, 250)  # 5.0%
    better = decide(champion, arm("challenger", 5000, 340))  # 6.8%
    assert better.action == "promote" and better.p_value < 0.05
    worse = decide(champion, arm("challenger", 5000, 170))  # 3.4%
    assert worse.action == "rollback" and "worse" in worse.reason
    same = decide(champion, arm("challenger", 5000, 255))
    assert same.action == "continue"
    early = decide(champion, arm("challenger", 200, 30))  # great but too few sessions
    assert early.action == "continue" and "waiting" in early.reason
    broken = decide(champion, arm("challenger", 5000, 400, errors=50, requests=1000))
    assert broken.action == "rollback" and "error rate" in broken.reason
    assert better.to_dict()["challenger"]["model_version"] == "challenger-v1"


def test_z_test_matches_the_textbook_value():
    z, p = two_proportion_z(arm("a", 1000, 100), arm("b", 1000, 130))
    assert z == pytest.approx(2.1027, abs=1e-3)  # 0.03 / sqrt(0.115 * 0.885 * 2 / 1000)
    assert p == pytest.approx(0.0175, abs=1e-3)


def test_rollout_shadow_canary_promote_and_rollback(tmp_path):
    from flashrec.adaptivity.rollout import (
        CANARY_SHARE,
        Ledger,
        RolloutState,
        after_canary,
        after_shadow,
        start_challenger,
    )

    ledger = Ledger(tmp_path / "decisions.jsonl")
    state = ledger.current("m1")
    assert state.traffic() == ({"champion": 1.0}, [])
    step = start_challenger(state, "m2", actor="sensor:retrain_on_drift", reason="psi 0.4")
    ledger.append(step)
    assert step.state.traffic() == ({"champion": 1.0}, ["challenger"])
    with pytest.raises(ValueError, match="already in shadow"):
        start_challenger(step.state, "m3", "test", "again")
    wait = after_shadow(step.state, lists_written=10, errors=0, actor="test")
    assert wait.action == "continue" and wait.state.stage == "shadow"
    canary = after_shadow(step.state, lists_written=500, errors=0, actor="test")
    ledger.append(canary)
    shares, shadow = canary.state.traffic()
    assert shares["challenger"] == CANARY_SHARE and not shadow
    won, decision = after_canary(
        canary.state, arm("champion", 5000, 250), arm("challenger", 5000, 340), actor="test"
    )
    ledger.append(won)
    assert decision.action == "promote" and won.state == RolloutState(
        "m2", None, "idle", ("shadow", "canary", "promote")
    )
    assert ledger.current("m1").champion_version == "m2"
    # a later challenger that loses is rolled back, the champion stays
    state = start_challenger(ledger.current("m1"), "m3", "test", "scheduled").state
    state = after_shadow(state, 500, 0, "test").state
    lost, decision = after_canary(
        state, arm("champion", 5000, 340), arm("challenger", 5000, 200), actor="test"
    )
    assert decision.action == "rollback" and lost.state.champion_version == "m2"
    assert lost.state.stage == "idle"
    records = ledger.records()
    assert [r["action"] for r in records] == ["shadow", "canary", "promote"]
    assert all(r["actor"] and r["reason"] for r in records)


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
