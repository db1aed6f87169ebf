"""Is the features job healthy? Process (or cluster job), consumer-group lag/pending,
checkpoint freshness.

What each figure says: ``lag`` = entries in the log not yet delivered to the job (it is
falling behind when this grows); ``pending`` = delivered but not yet covered by a completed
checkpoint (bounded by ~one checkpoint interval of traffic when healthy; it only grows if
checkpoints stop completing; Kafka tracks committed offsets only, so there ``lag`` counts
everything past the last completed checkpoint and ``pending`` is 0); ``checkpoint_age_s``
= time since the latest completed checkpoint (a restart replays at most that much).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from flink_jobs import job_process
from flink_jobs.job_config import JOB_NAME, JobConfig


@dataclass(frozen=True)
class JobHealth:
    running: bool
    pid: int | None
    log: str | None
    stream: str
    group: str
    consumers: int | None
    lag: int | None
    pending: int | None
    last_delivered_id: str | None
    latest_checkpoint: str | None
    checkpoint_age_s: float | None
    stats: dict[str, int]
    error: str | None = None

    @property
    def healthy(self) -> bool:
        """Running, and a checkpoint completed within the last ~10 intervals (or 30 s)."""
        return self.running and self.checkpoint_age_s is not None and self.checkpoint_age_s < 30

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "healthy": self.healthy})

    def describe(self) -> str:
        state = "running" if self.running else "not running"
        lines = [
            f"features job: {state}" + (f" (pid {self.pid})" if self.pid else ""),
            f"  log: {self.log or '-'}",
            f"  {self.stream} group {self.group}: lag={self.lag} pending={self.pending} "
            f"consumers={self.consumers} last_delivered={self.last_delivered_id}",
            f"  latest checkpoint: {self.latest_checkpoint or '-'}"
            + (f" ({self.checkpoint_age_s:.1f}s ago)" if self.checkpoint_age_s is not None else ""),
            f"  counters: {self.stats or '-'}",
        ]
        if self.error:
            lines.append(f"  error: {self.error}")
        return "\n".join(lines)


def _cluster_running(config: JobConfig) -> bool:
    """On a session cluster the job outlives its client: ask the JobManager."""
    from flink_jobs import session_cluster

    try:
        return bool(session_cluster.jobs(config, JOB_NAME, states=("RUNNING",)))
    except OSError:
        return False


def job_health(config: JobConfig) -> JobHealth:
    """Gather the figures; never raises for a missing group or an unreachable log or Redis."""
    import redis

    from flashrec.eventlog.factory import build_event_log

    info = job_process.read_pidfile(config)
    if config.on_cluster:
        running = _cluster_running(config)
    else:
        running = bool(info and job_process.alive(int(info["pid"])))
    latest = job_process.latest_checkpoint(config.checkpoint_dir)
    age = time.time() - (latest / "_metadata").stat().st_mtime if latest else None
    group: Any = None
    stats: dict[str, int] = {}
    error = None
    try:
        with build_event_log(config.settings) as log:
            group = log.health(config.group)
        r = redis.Redis.from_url(config.settings.redis_url, decode_responses=True)
        stats = {k: int(v) for k, v in r.hgetall(config.stats_key).items()}
        r.close()
    except Exception as exc:  # noqa: BLE001 - a status report names the failure, never raises
        error = f"{type(exc).__name__}: {exc}"
    return JobHealth(
        running=running,
        pid=int(info["pid"]) if info else None,
        log=info.get("log") if info else None,
        stream=(
            config.settings.kafka_events_topic
            if config.backend == "kafka"
            else config.settings.events_stream
        ),
        group=config.group,
        consumers=group.consumers if group else None,
        lag=group.lag if group else None,
        pending=group.pending if group else None,
        last_delivered_id=group.last_delivered_id if group else None,
        latest_checkpoint=str(latest) if latest else None,
        checkpoint_age_s=round(age, 2) if age is not None else None,
        stats=stats,
        error=error,
    )
