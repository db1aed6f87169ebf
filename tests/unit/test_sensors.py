"""The drift sensor: cursor, cooldown, one retrain per surge (build_sensor_context)."""

from __future__ import annotations

import dagster as dg

from orchestration.sensors import (
    DRIFT_ASSET,
    Report,
    SensorCursor,
    decide_retrain,
    retrain_on_drift,
)


def report(storage_id: int, ts: float, drift: bool) -> Report:
    return Report(storage_id, ts, drift, f"psi views_5m {ts}")


def test_decisions_respect_cursor_and_cooldown():
    cursor = SensorCursor()
    trigger, cursor, _ = decide_retrain([report(1, 100.0, False)], cursor)
    assert trigger is None and cursor.last_storage_id == 1
    trigger, cursor, why = decide_retrain([report(2, 200.0, True), report(3, 210.0, True)], cursor)
    assert trigger.storage_id == 3 and cursor == SensorCursor(3, 210.0)
    # the same surge keeps drifting: cooldown holds further retrains back
    trigger, cursor, why = decide_retrain([report(4, 400.0, True)], cursor, cooldown_s=1800)
    assert trigger is None and "cooldown" in why and cursor == SensorCursor(4, 210.0)
    # old reports are never reconsidered
    trigger, cursor, _ = decide_retrain([report(3, 210.0, True)], cursor)
    assert trigger is None
    trigger, cursor, _ = decide_retrain([report(5, 2100.0, True)], cursor, cooldown_s=1800)
    assert trigger.storage_id == 5 and cursor.last_launch_ts == 2100.0


def test_sensor_launches_once_per_surge_against_a_real_instance():
    instance = dg.DagsterInstance.ephemeral()

    def materialize_report(drift: bool) -> None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                DRIFT_ASSET, metadata={"drift_detected": drift, "summary": "views_5m psi 0.4"}
            )
        )

    materialize_report(False)
    result = retrain_on_drift(dg.build_sensor_context(instance=instance))
    assert not result.run_requests and "no drift" in result.skip_reason.skip_message
    cursor = result.cursor
    materialize_report(True)
    materialize_report(True)
    result = retrain_on_drift(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert len(result.run_requests) == 1
    assert result.run_requests[0].tags["flashrec/trigger"] == "drift"
    cursor = result.cursor
    materialize_report(True)
    result = retrain_on_drift(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert not result.run_requests and "cooldown" in result.skip_reason.skip_message
    assert (
        SensorCursor.parse(result.cursor).last_storage_id
        > SensorCursor.parse(cursor).last_storage_id
    )
