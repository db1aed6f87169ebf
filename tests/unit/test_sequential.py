"""The sequential promotion test: its statistic, its decisions and its error rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flashrec.adaptivity.sequential import (
    ArmStats,
    ExperimentDesign,
    decide,
    msprt,
    sessions_for_power,
)


def arm(variant: str, sessions: int, conversions: int, **kw) -> ArmStats:
    return ArmStats(variant, f"{variant}-v1", sessions, conversions, **kw)


def test_msprt_matches_the_closed_form():
    res = msprt(500, 10_000, 600, 10_000, tau=0.01, alpha=0.05)
    v = 0.05 * 0.95 / 10_000 + 0.06 * 0.94 / 10_000
    expected = math.sqrt(v / (v + 1e-4)) * math.exp(0.01**2 * 1e-4 / (2 * v * (v + 1e-4)))
    assert res.diff == pytest.approx(0.01)
    assert res.likelihood_ratio == pytest.approx(expected, rel=1e-9)
    assert res.p_value == pytest.approx(min(1.0, 1 / expected))
    assert res.ci_low < res.diff < res.ci_high


def test_decisions():
    design = ExperimentDesign(min_sessions=1000)
    champion = arm("champion", 20_000, 1000)  # 5.0%
    better = decide(champion, arm("challenger", 20_000, 1300), design)
    assert better.action == "promote" and better.conversion.p_value < 0.05
    assert better.uplift_pct == pytest.approx(30.0)
    worse = decide(champion, arm("challenger", 20_000, 700), design)
    assert worse.action == "rollback" and "worse" in worse.reason
    same = decide(champion, arm("challenger", 20_000, 1010), design)
    assert same.action == "continue" and "no decision yet" in same.reason
    early = decide(champion, arm("challenger", 200, 30), design)
    assert early.action == "continue" and "collecting" in early.reason
    broken = decide(champion, arm("challenger", 10, 0, lists=1000, errors=50), design)
    assert broken.action == "rollback" and "error guardrail" in broken.reason
    clicks = decide(
        arm("champion", 5000, 250, impressions=50_000, clicks=5000),
        arm("challenger", 5000, 250, impressions=50_000, clicks=3000),
        design,
    )
    assert clicks.action == "rollback" and "CTR guardrail" in clicks.reason
    assert better.to_dict()["challenger"]["model_version"] == "challenger-v1"


def test_repeated_looks_keep_false_promotions_below_alpha():
    """A/A tests looked at 50 times each: the mSPRT promotes in <= alpha of them, where a
    fixed-alpha z-test at every look would promote far more often."""
    rng = np.random.default_rng(7)
    design = ExperimentDesign(alpha=0.05, mde=0.01, min_sessions=200)
    runs, looks, step, rate = 300, 50, 400, 0.05
    false_promotions = naive = 0
    for _ in range(runs):
        a = np.cumsum(rng.binomial(1, rate, looks * step))
        b = np.cumsum(rng.binomial(1, rate, looks * step))
        stopped = z_stopped = False
        for i in range(1, looks + 1):
            n = i * step
            res = decide(arm("a", n, int(a[n - 1])), arm("b", n, int(b[n - 1])), design)
            stopped = stopped or res.action == "promote"
            pa, pb = a[n - 1] / n, b[n - 1] / n
            pooled = (pa + pb) / 2
            se = math.sqrt(max(pooled * (1 - pooled) * 2 / n, 1e-12))
            z_stopped = z_stopped or (pb - pa) / se > 1.645
        false_promotions += stopped
        naive += z_stopped
    assert false_promotions / runs <= 0.05
    assert naive / runs > 2 * max(false_promotions / runs, 0.01)


def test_sessions_for_power_is_finite_for_a_real_effect():
    design = ExperimentDesign(alpha=0.05, mde=0.02, min_sessions=200)
    need = sessions_for_power(0.05, design, max_sessions=40_000, runs=60, looks=20)
    assert need is not None and 1000 < need <= 40_000
