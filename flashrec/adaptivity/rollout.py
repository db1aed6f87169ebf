"""A retrained model's way to production: shadow, then a canary share, then a decision.

Pure logic: each function takes the current ``RolloutState`` and returns a ``Step`` (the
new state and why); the caller applies it (``rollout_store.apply``: Redis, read by every
service) and appends it to the ``Ledger`` (the audit trail). Models are pinned by version:
the state names the champion's and the challenger's versions, and services load exactly
those (never "the newest model labelled challenger").

Stages: ``idle`` (the champion alone) -> ``shadow`` (the challenger's lists are computed
and logged for every shopper, never served; sanity, score distribution and errors are
checked) -> ``canary`` (the challenger serves ``canary_share`` of shoppers; exact
per-test counters start at zero) -> promote or roll back by the sequential test
(``sequential.decide``) -> ``idle``. Every stage of every test has its own counters key
(``<test_id>:<stage>``), so a new challenger never inherits its predecessor's counts.

A retrained model that arrives while a test runs never replaces the model under test: it
is queued (the newest queued wins) and enters shadow when the running test ends.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from flashrec.adaptivity.sequential import (
    CONTINUE,
    PROMOTE,
    ROLLBACK,
    ArmStats,
    Decision,
    ExperimentDesign,
    decide,
)

CHAMPION = "champion"
CHALLENGER = "challenger"
IDLE, SHADOW, CANARY = "idle", "shadow", "canary"
CANARY_SHARE = 0.02
#: Lists the shadow must produce before its checks count (``ExperimentDesign.min_sessions``
#: plays that part in the rollout asset; this is the floor for direct callers).
SHADOW_MIN_LISTS = 200


@dataclass(frozen=True)
class RolloutState:
    champion_version: str
    challenger_version: str | None = None
    stage: str = IDLE
    test_id: str | None = None  # one per challenger: "<version>@<start ms>"
    stage_started_ms: int = 0
    canary_share: float = CANARY_SHARE
    queued_version: str | None = None
    history: tuple[str, ...] = field(default_factory=tuple)

    @property
    def counters_key(self) -> str | None:
        """Key of this stage's counters: ``<test_id>:<stage>`` (None when idle)."""
        return f"{self.test_id}:{self.stage}" if self.test_id and self.stage != IDLE else None

    def pins(self) -> dict[str, str]:
        """Variant -> model version the services must serve (or compute, for a shadow)."""
        out = {CHAMPION: self.champion_version} if self.champion_version else {}
        if self.stage != IDLE and self.challenger_version:
            out[CHALLENGER] = self.challenger_version
        return out

    def traffic(self) -> tuple[dict[str, float], list[str]]:
        """A/B shares and shadow variants of this stage."""
        if self.stage == SHADOW:
            return {CHAMPION: 1.0}, [CHALLENGER]
        if self.stage == CANARY:
            return {CHAMPION: 1.0 - self.canary_share, CHALLENGER: self.canary_share}, []
        return {CHAMPION: 1.0}, []

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> RolloutState:
        doc = json.loads(raw)
        doc["history"] = tuple(doc.get("history", ()))
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Step:
    """One recorded decision: the new state and why, with its figures."""

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
    history = (*state.history, action)[-50:]  # bounded: the ledger keeps everything
    new = replace(new, history=history)
    return Step(time.time(), actor, action, reason, state.stage, new.stage, metrics, new)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _enter_shadow(state: RolloutState, version: str, now_ms: int) -> RolloutState:
    return replace(
        state,
        challenger_version=version,
        stage=SHADOW,
        test_id=f"{version}@{now_ms}",
        stage_started_ms=now_ms,
        queued_version=None if state.queued_version == version else state.queued_version,
    )


def register(
    state: RolloutState | None, version: str, actor: str, reason: str, now_ms: int | None = None
) -> Step:
    """A model passed its checks: the first becomes champion, a later one enters shadow,
    or waits in the queue while another challenger is under test."""
    now = _now_ms() if now_ms is None else now_ms
    if state is None or not state.champion_version:
        base = state or RolloutState("")
        new = RolloutState(version, stage=IDLE, canary_share=base.canary_share)
        return _step(base, new, actor, "champion", f"first model: {reason}", {"version": version})
    if state.stage == IDLE:
        new = _enter_shadow(state, version, now)
        return _step(state, new, actor, SHADOW, reason, {"challenger_version": version})
    new = replace(state, queued_version=version)
    why = (
        f"{reason}; test {state.test_id} of {state.challenger_version} is in {state.stage}, "
        f"so {version} waits for it to end (the model under test is never replaced)"
    )
    return _step(state, new, actor, "queued", why, {"queued_version": version})


@dataclass(frozen=True)
class ShadowReport:
    """What the scorer measured while computing the challenger's lists in shadow."""

    lists: int
    errors: int
    nonfinite_scores: int = 0
    mean_len: float = 0.0
    champion_mean_len: float = 0.0
    score_mean: float = 0.0
    score_std: float = 0.0
    champion_score_mean: float = 0.0
    champion_score_std: float = 0.0
    overlap_at_10: float = 0.0  # mean share of the champion's top 10 in the challenger's

    @property
    def error_rate(self) -> float:
        return self.errors / self.lists if self.lists else 0.0


def shadow_checks(report: ShadowReport, design: ExperimentDesign) -> dict[str, bool]:
    """The shadow's sanity checks, by name (all must pass to serve a canary)."""
    return {
        "errors_within_guardrail": report.error_rate <= design.max_error_rate,
        "scores_finite": report.nonfinite_scores == 0,
        "scores_vary": report.score_std > 0 or report.lists == 0,
        "lists_full": report.mean_len >= 0.9 * report.champion_mean_len,
    }


def after_shadow(
    state: RolloutState,
    report: ShadowReport,
    actor: str,
    design: ExperimentDesign | None = None,
    min_lists: int = SHADOW_MIN_LISTS,
    now_ms: int | None = None,
) -> Step:
    """Shadow -> canary once the challenger produced ``min_lists`` lists that pass the
    checks; back to idle (rolled back) as soon as a check fails on enough lists."""
    if state.stage != SHADOW:
        raise ValueError(f"not in shadow (stage {state.stage})")
    design = design or ExperimentDesign()
    checks = shadow_checks(report, design)
    metrics = {**asdict(report), "checks": checks}
    if report.lists >= design.min_lists_for_errors and not all(checks.values()):
        failed = [name for name, ok in checks.items() if not ok]
        return _finish(state, actor, ROLLBACK, f"shadow checks failed: {failed}", metrics)
    if report.lists < min_lists:
        why = f"shadow continues: {report.lists}/{min_lists} lists so far"
        return _step(state, state, actor, CONTINUE, why, metrics)
    now = _now_ms() if now_ms is None else now_ms
    new = replace(state, stage=CANARY, stage_started_ms=now)
    reason = (
        f"shadow clean ({report.lists} lists, {report.errors} errors, overlap@10 with the "
        f"champion {report.overlap_at_10:.2f}): serve {state.canary_share:.0%} of shoppers"
    )
    return _step(state, new, actor, CANARY, reason, metrics)


def after_canary(
    state: RolloutState,
    champion: ArmStats,
    challenger: ArmStats,
    actor: str,
    design: ExperimentDesign | None = None,
) -> tuple[Step, Decision]:
    """Canary -> champion, back to idle, or keep testing, by the sequential test."""
    if state.stage != CANARY:
        raise ValueError(f"not in canary (stage {state.stage})")
    decision = decide(champion, challenger, design or ExperimentDesign())
    metrics = decision.to_dict()
    if decision.action == CONTINUE:
        return _step(state, state, actor, CONTINUE, decision.reason, metrics), decision
    return _finish(state, actor, decision.action, decision.reason, metrics), decision


def _finish(
    state: RolloutState, actor: str, action: str, reason: str, metrics: dict[str, Any]
) -> Step:
    champion = state.challenger_version if action == PROMOTE else state.champion_version
    new = replace(
        state,
        champion_version=champion or state.champion_version,
        challenger_version=None,
        stage=IDLE,
        test_id=None,
        stage_started_ms=_now_ms(),
    )
    return _step(state, new, actor, action, reason, metrics)


def next_queued(state: RolloutState, actor: str, now_ms: int | None = None) -> Step | None:
    """Idle with a queued model: it enters shadow now (None when there is nothing to do)."""
    if state.stage != IDLE or not state.queued_version:
        return None
    version = state.queued_version
    now = _now_ms() if now_ms is None else now_ms
    new = replace(_enter_shadow(state, version, now), queued_version=None)
    reason = f"queued model {version} enters shadow (the previous test ended)"
    return _step(state, new, actor, SHADOW, reason, {"challenger_version": version})


def set_canary_share(state: RolloutState, share: float, actor: str) -> Step:
    """Change the canary share at run time (applies at once if a canary is running)."""
    if not (0.0 < share < 1.0) or math.isnan(share):
        raise ValueError(f"canary share must be in (0, 1), got {share}")
    new = replace(state, canary_share=share)
    why = f"canary share {state.canary_share:.0%} -> {share:.0%}"
    return _step(state, new, actor, "canary_share", why, {"canary_share": share})


class Ledger:
    """Append-only JSON-lines record of every rollout step (the audit trail)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, step: Step) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(step.to_record(), default=str) + "\n")

    def records(self, last: int | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = [line for line in self.path.read_text().splitlines() if line]
        if last is not None:
            lines = lines[-last:]
        return [json.loads(line) for line in lines]

    def current(self) -> RolloutState | None:
        """The state after the last recorded step (None: nothing recorded yet)."""
        records = self.records(last=1)
        if not records:
            return None
        return RolloutState.from_json(json.dumps(records[-1]["state"]))
