"""One look at the running test: read its counters, take the stated decision.

Shared by the rollout sensor (which only looks, to decide whether a run is worth
launching) and the rollout asset (which looks again and applies). Reading is cheap: a few
Redis hashes and sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from flashrec.adaptivity import test_counters
from flashrec.adaptivity.rollout import (
    CANARY,
    CHALLENGER,
    CHAMPION,
    SHADOW,
    RolloutState,
    Step,
    after_canary,
    after_shadow,
    next_queued,
)
from flashrec.adaptivity.sequential import ExperimentDesign


@dataclass(frozen=True)
class RolloutPolicy:
    """The test's design plus the shadow's sample (from settings)."""

    design: ExperimentDesign
    min_shadow_lists: int

    @classmethod
    def from_settings(cls, settings) -> RolloutPolicy:
        design = ExperimentDesign(
            alpha=settings.ab_alpha,
            mde=settings.ab_mde,
            min_sessions=settings.ab_min_sessions,
            max_error_rate=settings.ab_max_error_rate,
            min_lists_for_errors=min(50, settings.ab_min_sessions),
        )
        return cls(design, settings.ab_min_sessions)


def look(
    client: redis.Redis, state: RolloutState, policy: RolloutPolicy, actor: str
) -> Step | None:
    """The step the running test calls for now (``continue`` included); None when idle
    with nothing queued."""
    if state.stage == SHADOW and state.counters_key:
        report = test_counters.read_shadow(client, state.counters_key, CHAMPION, CHALLENGER)
        return after_shadow(state, report, actor, policy.design, policy.min_shadow_lists)
    if state.stage == CANARY and state.counters_key:
        champion = test_counters.read_arm(
            client, state.counters_key, CHAMPION, state.champion_version
        )
        challenger = test_counters.read_arm(
            client, state.counters_key, CHALLENGER, state.challenger_version or ""
        )
        step, _ = after_canary(state, champion, challenger, actor, policy.design)
        return step
    return next_queued(state, actor)
