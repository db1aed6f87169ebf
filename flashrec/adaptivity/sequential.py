"""A promotion test that stays valid however often it is looked at: the mixture SPRT.

WHY sequential: the rollout looks at the running A/B test every few seconds and stops as
soon as it can. A fixed-alpha test re-run at every look promotes far more often than its
alpha says (each look is another chance of a false positive). The mixture sequential
probability ratio test (mSPRT; Robbins 1970, Johari, Koomen, Pekelis & Walsh, "Always
Valid Inference", Operations Research 2022) gives always-valid p-values: with
``p = min(1, 1 / Lambda_n)`` the chance that p ever falls below alpha under the null is at
most alpha, whenever the test is stopped. Neither scipy nor statsmodels ships it (both
offer fixed-horizon tests only), hence these few lines.

The statistic, for the difference of two proportions theta = p_B - p_A (challenger minus
champion), with the normal approximation of its estimate theta_hat and variance
V = p_A(1 - p_A)/n_A + p_B(1 - p_B)/n_B, and a N(0, tau^2) mixture over theta:

    Lambda_n = sqrt(V / (V + tau^2)) * exp(theta_hat^2 * tau^2 / (2 V (V + tau^2)))

tau is set to the minimum detectable effect (``mde``): the mixture then puts its weight
where the effects worth detecting are. The matching always-valid confidence interval is
``theta_hat +- sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)))``.

Decisions (``decide``): roll back at once on the error guardrail (more than
``max_error_rate`` of the challenger's lists failed); wait for ``min_sessions`` per arm
(the normal approximation needs them); then promote when the conversion test rejects
with theta_hat > 0, roll back when it rejects with theta_hat < 0 or when the click-through
guardrail (the same test on CTR) says the challenger is worse; otherwise keep testing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PROMOTE, ROLLBACK, CONTINUE = "promote", "rollback", "continue"


@dataclass(frozen=True)
class ArmStats:
    """Exact counts of one arm of one test (``flashrec.attribution`` keeps them)."""

    variant: str
    model_version: str
    sessions: int  # distinct shoppers shown the arm
    conversions: int  # distinct shoppers who bought an item it showed them
    impressions: int = 0
    clicks: int = 0
    lists: int = 0  # lists the scorer asked the arm's model for
    errors: int = 0  # of those, failed or unusable

    @property
    def rate(self) -> float:
        return self.conversions / self.sessions if self.sessions else 0.0

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.lists if self.lists else 0.0


@dataclass(frozen=True)
class SequentialResult:
    """One look at a two-proportion comparison."""

    diff: float  # challenger minus champion
    variance: float
    likelihood_ratio: float
    p_value: float  # always valid
    ci_low: float
    ci_high: float

    def rejects(self, alpha: float) -> bool:
        return self.p_value <= alpha


def msprt(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, tau: float, alpha: float
) -> SequentialResult:
    """The mixture SPRT of p_b - p_a = 0 (see the module docstring for the formulas)."""
    if n_a <= 0 or n_b <= 0:
        return SequentialResult(0.0, math.inf, 1.0, 1.0, -1.0, 1.0)
    p_a, p_b = successes_a / n_a, successes_b / n_b
    diff = p_b - p_a
    # A 0/1 observed rate has no variance estimate; pad it by half a success (Wilson-style)
    # so that an arm with no conversions yet cannot make the statistic explode.
    var_a = max(p_a * (1 - p_a), 0.5 / n_a * (1 - 0.5 / n_a)) / n_a
    var_b = max(p_b * (1 - p_b), 0.5 / n_b * (1 - 0.5 / n_b)) / n_b
    v, t2 = var_a + var_b, tau * tau
    log_lr = 0.5 * math.log(v / (v + t2)) + diff * diff * t2 / (2 * v * (v + t2))
    lr = math.exp(min(log_lr, 700.0))
    half = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + math.log((v + t2) / v)))
    return SequentialResult(diff, v, lr, min(1.0, 1.0 / lr), diff - half, diff + half)


@dataclass(frozen=True)
class ExperimentDesign:
    """What the test promises: stated with every decision."""

    alpha: float = 0.05
    mde: float = 0.01  # absolute difference in conversion rate
    min_sessions: int = 1000
    max_error_rate: float = 0.01
    min_lists_for_errors: int = 50

    @property
    def tau(self) -> float:
        return self.mde


@dataclass(frozen=True)
class Decision:
    action: str  # promote | rollback | continue
    reason: str
    conversion: SequentialResult | None
    ctr: SequentialResult | None
    champion: ArmStats
    challenger: ArmStats
    design: ExperimentDesign

    @property
    def uplift_pct(self) -> float | None:
        """Relative conversion uplift of the challenger over the champion, in %."""
        base = self.champion.rate
        return (self.challenger.rate - base) / base * 100 if base > 0 else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["uplift_pct"] = self.uplift_pct
        out["champion"]["rate"] = self.champion.rate
        out["challenger"]["rate"] = self.challenger.rate
        return out


def decide(champion: ArmStats, challenger: ArmStats, design: ExperimentDesign) -> Decision:
    """Promote, roll back or keep testing (order of the rules in the module docstring)."""

    def out(action: str, reason: str, conv=None, ctr=None) -> Decision:
        return Decision(action, reason, conv, ctr, champion, challenger, design)

    if challenger.lists >= design.min_lists_for_errors and (
        challenger.error_rate > design.max_error_rate
    ):
        return out(
            ROLLBACK,
            f"error guardrail: {challenger.errors}/{challenger.lists} lists failed "
            f"({challenger.error_rate:.1%} > {design.max_error_rate:.0%})",
        )
    if min(champion.sessions, challenger.sessions) < design.min_sessions:
        return out(
            CONTINUE,
            f"collecting: {champion.sessions} / {challenger.sessions} sessions "
            f"(champion / challenger) of {design.min_sessions} per arm",
        )
    conv = msprt(
        champion.conversions,
        champion.sessions,
        challenger.conversions,
        challenger.sessions,
        tau=design.tau,
        alpha=design.alpha,
    )
    ctr = msprt(
        champion.clicks,
        champion.impressions,
        challenger.clicks,
        challenger.impressions,
        tau=design.tau,
        alpha=design.alpha,
    )
    figures = (
        f"conversion {challenger.rate:.4f} vs {champion.rate:.4f} "
        f"(diff {conv.diff:+.4f}, always-valid {1 - design.alpha:.0%} CI "
        f"[{conv.ci_low:+.4f}, {conv.ci_high:+.4f}], p={conv.p_value:.4f})"
    )
    if conv.rejects(design.alpha):
        if conv.diff > 0:
            return out(PROMOTE, f"challenger better: {figures}", conv, ctr)
        return out(ROLLBACK, f"challenger worse: {figures}", conv, ctr)
    if ctr.rejects(design.alpha) and ctr.diff < 0:
        return out(
            ROLLBACK,
            f"CTR guardrail: {challenger.ctr:.4f} vs {champion.ctr:.4f} "
            f"(p={ctr.p_value:.4f}); {figures}",
            conv,
            ctr,
        )
    return out(CONTINUE, f"no decision yet: {figures}", conv, ctr)


def sessions_for_power(
    base_rate: float,
    design: ExperimentDesign,
    *,
    share: float = 0.5,
    power: float = 0.8,
    looks: int = 40,
    max_sessions: int = 200_000,
    runs: int = 400,
    seed: int = 0,
) -> int | None:
    """Total sessions (both arms) after which the test has stopped for ``mde`` with the
    given power, by simulation (``looks`` evenly spaced looks up to ``max_sessions``).

    WHY simulate: the mSPRT's stopping time has no closed form; a few hundred simulated
    tests at the stated design answer "how much traffic does this test need" honestly.
    None when ``max_sessions`` is not enough.
    """
    rng = np.random.default_rng(seed)
    grid = np.linspace(max_sessions / looks, max_sessions, looks).astype(int)
    stops = np.full(runs, np.inf)
    p_b = base_rate + design.mde
    for r in range(runs):
        n_b = rng.binomial(grid, share)
        n_a = grid - n_b
        # cumulative successes at each look (one binomial per increment keeps paths nested)
        inc_a = np.diff(np.concatenate([[0], n_a]))
        inc_b = np.diff(np.concatenate([[0], n_b]))
        s_a = np.cumsum(rng.binomial(np.maximum(inc_a, 0), base_rate))
        s_b = np.cumsum(rng.binomial(np.maximum(inc_b, 0), p_b))
        for i, total in enumerate(grid):
            if min(n_a[i], n_b[i]) < design.min_sessions:
                continue
            res = msprt(
                int(s_a[i]),
                int(n_a[i]),
                int(s_b[i]),
                int(n_b[i]),
                tau=design.tau,
                alpha=design.alpha,
            )
            if res.rejects(design.alpha) and res.diff > 0:
                stops[r] = total
                break
    found = np.sort(stops)[int(math.ceil(power * runs)) - 1]
    return None if not np.isfinite(found) else int(found)
