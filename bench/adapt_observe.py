"""What the adaptivity benchmark watches while the platform runs by itself (read-only).

The timeline comes from the platform's own records: drift reports in the Dagster instance
(the same instance the UI shows), the rollout ledger and Redis state, the model service's
``/info`` (which versions it has loaded), and the read API's answers seen by the traffic
driver. Nothing here writes platform state.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from flashrec.adaptivity.rollout import Ledger


@dataclass
class Timeline:
    shift_at: float | None = None
    drift_at: float | None = None
    retrain_started_at: float | None = None
    registered_at: float | None = None  # challenger entered shadow (pinned)
    loaded_at: float | None = None  # the model service answers with it
    canary_at: float | None = None
    decided_at: float | None = None
    decision: str | None = None
    decision_reason: str = ""
    decision_metrics: dict[str, Any] = field(default_factory=dict)
    challenger: str | None = None
    test_id: str | None = None
    champion_before: str | None = None
    served_changed_at: float | None = None
    events: list[tuple[float, str]] = field(default_factory=list)

    def since_shift(self, at: float | None) -> float | None:
        return None if at is None or self.shift_at is None else at - self.shift_at

    def note(self, what: str, at: float | None = None) -> None:
        self.events.append((at or time.time(), what))


class Observer:
    """Polls every ``interval_s`` in a thread; ``timeline`` fills in as things happen."""

    def __init__(
        self, ledger: Ledger, model_url: str, instance: Any, *, interval_s: float = 1.0
    ) -> None:
        self.ledger = ledger
        self.model_url = model_url.rstrip("/")
        self.instance = instance
        self.interval_s = interval_s
        self.timeline = Timeline()
        self._seen_records = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=5.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="adapt-observer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._http.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - an observer must never end the run
                self.timeline.note(f"observer error: {exc!r}")

    def poll(self) -> None:
        t = self.timeline
        self._ledger()
        if t.shift_at is not None and t.drift_at is None:
            t.drift_at = self._drift_after(t.shift_at)
            if t.drift_at is not None:
                t.note("drift detected on live data", t.drift_at)
        if t.shift_at is not None and t.retrain_started_at is None:
            t.retrain_started_at = self._run_started_after("retrain_models", t.shift_at)
        if t.challenger and t.loaded_at is None:
            info = self._http.post(self.model_url + "/info", json={}).json()
            if t.challenger in info.get("versions", {}).values():
                t.loaded_at = time.time()
                t.note(f"model service serving challenger {t.challenger}", t.loaded_at)

    def _ledger(self) -> None:
        t = self.timeline
        records = self.ledger.records()
        for r in records[self._seen_records :]:
            at, action = float(r["at"]), r["action"]
            if t.shift_at is None or at < t.shift_at:
                continue
            state = r["state"]
            if action == "shadow" and t.registered_at is None:
                t.registered_at, t.challenger = at, state["challenger_version"]
                t.champion_before = state["champion_version"]
            elif action == "canary" and t.canary_at is None:
                t.canary_at, t.test_id = at, state["test_id"]
            elif action in ("promote", "rollback") and t.decided_at is None and t.challenger:
                t.decided_at, t.decision = at, action
                t.decision_reason, t.decision_metrics = r["reason"], r.get("metrics") or {}
            t.note(f"rollout {action}: {r['reason']}", at)
        self._seen_records = len(records)

    def _drift_after(self, since: float) -> float | None:
        import dagster as dg

        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("drift_report")), limit=50
        ).records
        hits = []
        for rec in records:
            meta = rec.asset_materialization.metadata if rec.asset_materialization else {}
            flag = meta.get("retrain", meta.get("drift_detected"))
            if rec.timestamp >= since and flag is not None and bool(flag.value):
                hits.append(rec.timestamp)
        return min(hits) if hits else None

    def _run_started_after(self, job: str, since: float) -> float | None:
        import dagster as dg

        runs = self.instance.get_run_records(filters=dg.RunsFilter(job_name=job), limit=10)
        starts = [r.start_time for r in runs if r.start_time and r.start_time >= since]
        return min(starts) if starts else None


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion (for each arm's own rate)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
