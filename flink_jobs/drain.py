"""``run --restore --bounded drain`` on Kafka: run until the log's end as of the start is
covered by a checkpoint, then stop with a draining savepoint.

WHY: KafkaSource keeps each partition's stopping offset in its checkpointed split state,
so a job restored from an unbounded run's checkpoint inherits "never stop" whatever the
new run asks for. The Redis source takes its stop id from the new run, so it needs none of
this. Here the client watches instead: once both consumer groups (features and, with the
lake, ``flink-lake``) have committed offsets at or past every partition's end offset taken
at start — commits happen only when a checkpoint of *this* run completes — everything up to
that end is in the job's state, and ``stop_with_savepoint(drain)`` ends the input, so the
operators flush their pending rows and the FileSink commits its last files (the same end
as a bounded run's final checkpoint).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flink_jobs import event_sources
from flink_jobs.job_config import JobConfig

log = logging.getLogger(__name__)

FAILED = ("FAILED", "CANCELED", "CANCELLING", "FAILING")


def needed(config: JobConfig) -> bool:
    return config.backend == "kafka" and config.bounded == "drain" and bool(config.restore_from)


def caught_up(targets: dict[int, int], committed: dict[int, int]) -> bool:
    """Every partition's committed offset at or past its target (no target: nothing to do)."""
    return all(committed.get(p, -1) >= end for p, end in targets.items() if end > 0)


def _this_run_checkpointed(config: JobConfig, job_id: str) -> bool:
    return any((config.checkpoint_dir / job_id).glob("chk-*/_metadata"))


def execute_until_drained(env: Any, config: JobConfig, name: str, poll_s: float = 0.5) -> None:
    """Submit the job built in ``env``, wait until caught up, stop it with a drain."""
    from flashrec.eventlog.kafka import KafkaEventLog

    groups = event_sources.groups(config)
    with KafkaEventLog.from_settings(config.settings) as events:
        targets = events.end_offsets()
        log.info("drain: running until %s have committed %s", groups, targets)
        client = env.execute_async(name)
        job_id = str(client.get_job_id())
        while True:
            status = str(client.get_job_status().result())
            if status in FAILED or status == "FINISHED":
                client.get_job_execution_result().result()  # raises the job's failure
                raise RuntimeError(f"job {job_id} ended ({status}) before it had drained")
            if _this_run_checkpointed(config, job_id) and all(
                caught_up(targets, events.committed_offsets(g)) for g in groups
            ):
                break
            time.sleep(poll_s)
    log.info("drain: caught up; stopping %s with a draining savepoint", job_id)
    _stop_with_drain(client, (config.checkpoint_dir / "savepoints").as_uri())
    client.get_job_execution_result().result()


def _stop_with_drain(client: Any, savepoints: str) -> str:
    """``JobClient.stopWithSavepoint(drain, dir, format)`` through py4j: PyFlink's wrapper
    still calls the two-argument form that Flink 2 removed."""
    from pyflink.common.completable_future import CompletableFuture
    from pyflink.java_gateway import get_gateway

    canonical = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    future = client._j_job_client.stopWithSavepoint(True, savepoints, canonical)
    return CompletableFuture(future, str).result()
