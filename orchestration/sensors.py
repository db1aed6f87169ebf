"""The sensor that retrains when drift is detected, with a cursor and a cooldown.

It watches materializations of the ``drift_report`` asset. A report whose metadata says
``drift_detected`` launches the retraining job, unless a retrain was launched less than
``cooldown_s`` ago: one surge produces many drifted reports, and must cause one retrain.
The cursor remembers the last report seen and the last launch, so a restarted daemon
neither re-launches for old reports nor forgets the cooldown.
"""

import json
from dataclasses import asdict, dataclass

import dagster as dg

DRIFT_ASSET = dg.AssetKey("drift_report")
RETRAIN_JOB = "retrain_models"
COOLDOWN_S = 30 * 60


@dataclass(frozen=True)
class SensorCursor:
    last_storage_id: int = 0
    last_launch_ts: float = 0.0

    @classmethod
    def parse(cls, raw: str | None) -> "SensorCursor":
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class Report:
    storage_id: int
    timestamp: float
    drift_detected: bool
    summary: str


def decide_retrain(
    reports: list[Report], cursor: SensorCursor, cooldown_s: float = COOLDOWN_S
) -> tuple[Report | None, SensorCursor, str]:
    """Pick the drifted report that launches a retrain (if any) and the next cursor."""
    new = sorted(
        (r for r in reports if r.storage_id > cursor.last_storage_id), key=lambda r: r.storage_id
    )
    if not new:
        return None, cursor, "no new drift report"
    seen = new[-1].storage_id
    drifted = [r for r in new if r.drift_detected]
    if not drifted:
        return None, SensorCursor(seen, cursor.last_launch_ts), "latest reports show no drift"
    trigger = drifted[-1]
    since = trigger.timestamp - cursor.last_launch_ts
    if cursor.last_launch_ts and since < cooldown_s:
        why = f"drift seen, but last retrain was {since:.0f}s ago (cooldown {cooldown_s:.0f}s)"
        return None, SensorCursor(seen, cursor.last_launch_ts), why
    return trigger, SensorCursor(seen, trigger.timestamp), f"drift: {trigger.summary}"


def _reports(context: dg.SensorEvaluationContext, after: int) -> list[Report]:
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DRIFT_ASSET, after_storage_id=after or None), limit=100
    ).records
    out = []
    for record in records:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        flag = metadata.get("drift_detected")
        summary = metadata.get("summary")
        out.append(
            Report(
                record.storage_id,
                record.timestamp,
                bool(flag.value) if flag is not None else False,
                str(summary.value) if summary is not None else "",
            )
        )
    return out


@dg.sensor(
    job_name=RETRAIN_JOB,
    minimum_interval_seconds=60,
    description="Launch a retrain when the drift report detects drift (30 min cooldown).",
)
def retrain_on_drift(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cursor = SensorCursor.parse(context.cursor)
    trigger, next_cursor, why = decide_retrain(_reports(context, cursor.last_storage_id), cursor)
    context.log.info(why)
    if trigger is None:
        return dg.SensorResult(skip_reason=why, cursor=next_cursor.dump())
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"drift-{trigger.storage_id}",
                tags={"flashrec/trigger": "drift", "flashrec/why": why[:200]},
            )
        ],
        cursor=next_cursor.dump(),
    )
