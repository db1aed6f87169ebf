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


def test_live_lake_sensor_requests_each_day_that_grew(tmp_path, monkeypatch):
    import json

    from orchestration.live_sensors import live_lake_refresh

    monkeypatch.setenv("FLASHREC_VAR_DIR", str(tmp_path))
    day = tmp_path / "landing" / "live" / "dt=2026-12-07"
    day.mkdir(parents=True)
    (day / "part-a-0.jsonl").write_text("{}\n")
    (day / ".part-a-1.jsonl.inprogress.x").write_text("{}\n")  # not finished: not counted
    instance = dg.DagsterInstance.ephemeral()
    first = live_lake_refresh(dg.build_sensor_context(instance=instance))
    assert [r.partition_key for r in first.run_requests] == ["2026-12-07"]
    assert json.loads(first.cursor) == {"2026-12-07": 1}
    again = live_lake_refresh(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert not again.run_requests and again.cursor == first.cursor
    (day / "part-a-1.jsonl").write_text("{}\n")
    grown = live_lake_refresh(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert grown.run_requests[0].run_key == "live-2026-12-07-2"


def test_rollout_sensor_launches_on_steps_and_records_looks_rarely():
    from orchestration.rollout_sensor import RECORD_EVERY_S, plan

    key, last = plan("canary", "m2@1", "shadow", 0.0, 1000.0)
    assert key == "m2@1:shadow:canary" and last == 1000.0
    key, last = plan("continue", "m2@1", "canary", 1000.0, 1010.0)
    assert key is None and last == 1000.0
    key, last = plan("continue", "m2@1", "canary", 1000.0, 1000.0 + RECORD_EVERY_S)
    assert key is not None and key.startswith("m2@1:canary:continue") and last > 1000.0
