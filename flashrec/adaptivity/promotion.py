"""Champion/challenger decisions from A/B conversion counts, with a stated test.

The test: a one-sided two-proportion z-test on conversion rate (sessions that bought /
sessions served), challenger against champion, at alpha = 0.05, run only once both arms
have at least ``min_sessions`` sessions (default 1,000) so that an early lucky streak
cannot promote a model. Promotion needs the challenger significantly better; rollback
happens when it is significantly worse, or when it errors (serving errors above 1% of
its requests). Otherwise the experiment continues. Every decision carries its figures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

ALPHA = 0.05
MIN_SESSIONS = 1000
MAX_ERROR_RATE = 0.01


@dataclass(frozen=True)
class ArmStats:
    variant: str
    model_version: str
    sessions: int
    conversions: int
    errors: int = 0
    requests: int = 0

    @property
    def rate(self) -> float:
        return self.conversions / self.sessions if self.sessions else 0.0


@dataclass(frozen=True)
class Decision:
    action: str  # "promote" | "rollback" | "continue"
    reason: str
    z: float | None
    p_value: float | None
    champion: ArmStats
    challenger: ArmStats
    decided_by: str = "flashrec.adaptivity.promotion"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def two_proportion_z(a: ArmStats, b: ArmStats) -> tuple[float, float]:
    """z of (b - a) with a pooled variance, and the one-sided p-value that b > a."""
    pooled = (a.conversions + b.conversions) / (a.sessions + b.sessions)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.sessions + 1 / b.sessions))
    if se == 0:
        return 0.0, 0.5
    z = (b.rate - a.rate) / se
    return z, float(stats.norm.sf(z))


def decide(
    champion: ArmStats,
    challenger: ArmStats,
    *,
    alpha: float = ALPHA,
    min_sessions: int = MIN_SESSIONS,
    max_error_rate: float = MAX_ERROR_RATE,
) -> Decision:
    if challenger.requests and challenger.errors / challenger.requests > max_error_rate:
        rate = challenger.errors / challenger.requests
        return Decision(
            "rollback",
            f"challenger error rate {rate:.2%} > {max_error_rate:.0%}",
            None,
            None,
            champion,
            challenger,
        )
    if min(champion.sessions, challenger.sessions) < min_sessions:
        return Decision(
            "continue",
            f"waiting for {min_sessions} sessions per arm "
            f"(champion {champion.sessions}, challenger {challenger.sessions})",
            None,
            None,
            champion,
            challenger,
        )
    z, p_better = two_proportion_z(champion, challenger)
    p_worse = 1.0 - p_better
    figures = f"conversion {challenger.rate:.4f} vs {champion.rate:.4f}, z={z:.2f}"
    if p_better < alpha:
        return Decision(
            "promote",
            f"challenger better: {figures}, p={p_better:.4f}",
            z,
            p_better,
            champion,
            challenger,
        )
    if p_worse < alpha:
        return Decision(
            "rollback",
            f"challenger worse: {figures}, p={p_worse:.4f}",
            z,
            p_worse,
            champion,
            challenger,
        )
    return Decision(
        "continue", f"no significant difference yet: {figures}", z, p_better, champion, challenger
    )
