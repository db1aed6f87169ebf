"""A retrained model's way to production: shadow, then a small canary share, then a
decision (promote or roll back), each step recorded with who/what/why and its figures.

Pure logic: it returns the A/B shares and shadow set to apply; the caller writes them to
Redis (``flashrec.serving.cache.set_ab_shares``) and the ledger.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from flashrec.adaptivity.promotion import ArmStats, Decision, decide

CHAMPION = "champion"
CHALLENGER = "challenger"
CANARY_SHARE = 0.02
#: The shadow stage must show the challenger produces lists without errors this often.
SHADOW_MIN_LISTS = 200


@dataclass(frozen=True)
class RolloutState:
    champion_version: str
    challenger_version: str | None = None
    stage: str = "idle"  # idle | shadow | canary
    history: tuple[str, ...] = field(default_factory=tuple)

    def traffic(self) -> tuple[dict[str, float], list[str]]:
        """A/B shares and shadow variants this stage serves."""
        if self.stage == "shadow":
            return {CHAMPION: 1.0}, [CHALLENGER]
        if self.stage == "canary":
            return {CHAMPION: 1.0 - CANARY_SHARE, CHALLENGER: CANARY_SHARE}, []
        return {CHAMPION: 1.0}, []


@dataclass(frozen=True)
class Step:
    """One recorded decision: the new state and why."""

    at: float
    actor: str
    action: str
    reason: str
    before: str
    after: str
    metrics: dict[str, Any]
    state: RolloutState

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["state"] = asdict(self.state)
        return record


def _step(
    state: RolloutState,
    new: RolloutState,
    actor: str,
    action: str,
    reason: str,
    metrics: dict[str, Any],
) -> Step:
    new = replace(new, history=(*state.history, action))
    return Step(time.time(), actor, action, reason, state.stage, new.stage, metrics, new)


def start_challenger(state: RolloutState, version: str, actor: str, reason: str) -> Step:
    """A retrained model enters as a shadow: scored and logged, never served."""
    if state.stage != "idle":
        raise ValueError(f"a challenger ({state.challenger_version}) is already in {state.stage}")
    new = RolloutState(state.champion_version, version, "shadow")
    return _step(state, new, actor, "shadow", reason, {"challenger_version": version})


def after_shadow(
    state: RolloutState,
    lists_written: int,
    errors: int,
    actor: str,
    min_lists: int = SHADOW_MIN_LISTS,
) -> Step:
    """Shadow -> canary once the challenger produced enough lists without errors."""
    if state.stage != "shadow":
        raise ValueError(f"not in shadow (stage {state.stage})")
    metrics = {"lists_written": lists_written, "errors": errors}
    if errors:
        new = RolloutState(state.champion_version)
        return _step(state, new, actor, "rollback", f"{errors} errors while in shadow", metrics)
    if lists_written < min_lists:
        reason = f"shadow continues: {lists_written}/{min_lists} lists so far"
        return _step(state, state, actor, "continue", reason, metrics)
    new = replace(state, stage="canary")
    reason = f"shadow clean ({lists_written} lists): serve {CANARY_SHARE:.0%} of traffic"
    return _step(state, new, actor, "canary", reason, metrics)


def after_canary(
    state: RolloutState, champion: ArmStats, challenger: ArmStats, actor: str, **test: Any
) -> tuple[Step, Decision]:
    """Canary -> champion or back to idle, by the stated test in ``promotion.decide``."""
    if state.stage != "canary":
        raise ValueError(f"not in canary (stage {state.stage})")
    decision = decide(champion, challenger, **test)
    metrics = decision.to_dict()
    if decision.action == "promote":
        new = RolloutState(state.challenger_version or state.champion_version)
    elif decision.action == "rollback":
        new = RolloutState(state.champion_version)
    else:
        new = state
    return _step(state, new, actor, decision.action, decision.reason, metrics), decision


class Ledger:
    """Append-only JSON-lines record of every rollout step (the audit trail)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, step: Step) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(step.to_record(), default=str) + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def current(self, default_champion: str) -> RolloutState:
        records = self.records()
        if not records:
            return RolloutState(default_champion)
        state = records[-1]["state"]
        return RolloutState(
            state["champion_version"],
            state["challenger_version"],
            state["stage"],
            tuple(state["history"]),
        )
