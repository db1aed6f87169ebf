"""The rollout sensor: looks at the running test every ``FLASHREC_ROLLOUT_INTERVAL_S``.

WHY a sensor that only looks: a look is a few Redis reads, cheap enough for every half
minute, while a Dagster run costs a process and its imports. The sensor takes the same
look the rollout asset would (``rollout_look.look``) and launches ``advance_rollout``
when the look calls for a change (shadow -> canary, promote, roll back, a queued model's
turn), or every ``record_every_s`` to record that the test continues (with its figures).
The run looks again and applies; the sequential test is valid at any look, so looking
often costs no false promotions.
"""

from __future__ import annotations

import json
import time

import dagster as dg
import redis

from flashrec.adaptivity.rollout import CONTINUE
from flashrec.adaptivity.rollout_look import RolloutPolicy, look
from flashrec.adaptivity.rollout_store import read_state
from flashrec.settings import Settings
from orchestration.automation import in_flight, sensor_status
from orchestration.jobs import rollout_job

_SETTINGS = Settings.from_env()
RECORD_EVERY_S = 600.0


def plan(
    action: str, test: str, stage: str, last_record_ts: float, now: float
) -> tuple[str | None, float]:
    """Run key to launch (None: nothing) and the next "last recorded" time."""
    if action != CONTINUE:
        return f"{test}:{stage}:{action}", now
    if now - last_record_ts >= RECORD_EVERY_S:
        return f"{test}:{stage}:continue:{int(now // RECORD_EVERY_S)}", now
    return None, last_record_ts


@dg.sensor(
    job=rollout_job,
    minimum_interval_seconds=_SETTINGS.rollout_interval_s,
    default_status=sensor_status(_SETTINGS),
    description="Look at the running A/B test; launch the rollout when it calls for a step.",
)
def rollout_watch(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {"last_record_ts": 0.0}
    if in_flight(context, rollout_job.name):
        return dg.SensorResult(skip_reason="a rollout run is in flight", cursor=context.cursor)
    settings = Settings.from_env()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5.0)
    try:
        state = read_state(client)
        if state is None:
            return dg.SensorResult(skip_reason="no rollout state yet", cursor=context.cursor)
        step = look(client, state, RolloutPolicy.from_settings(settings), "sensor:rollout_watch")
    finally:
        client.close()
    if step is None:
        return dg.SensorResult(skip_reason=f"{state.stage}: nothing to do", cursor=context.cursor)
    key, last = plan(
        step.action, state.test_id or "idle", state.stage, cursor["last_record_ts"], time.time()
    )
    cursor["last_record_ts"] = last
    if key is None:
        return dg.SensorResult(skip_reason=step.reason[:500], cursor=json.dumps(cursor))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=key,
                tags={"flashrec/trigger": "rollout", "flashrec/why": step.reason[:200]},
            )
        ],
        cursor=json.dumps(cursor),
    )
