"""Prometheus metrics of the features job, served from its Python operators.

What Flink itself reports (its Prometheus reporter, ``FLASHREC_FLINK_REPORTER_PORT``):
checkpoint duration and size, restarts, JVM. What only the job knows is here, on
``FLASHREC_FLINK_METRICS_PORT``: events parsed and refused, each stage's flush latency,
rows and freshness (how old the oldest entry of a flush was), and, computed at scrape
time, the consumer groups' lag and pending entries and the age and size of the newest
completed checkpoint (what a restart would replay from).

WHY one exporter per interpreter: in thread mode (the default) every Python operator of
the job runs in one interpreter inside the TaskManager, so the operators share one
registry and one HTTP listener (the first ``open`` starts it; a Flink restart re-opens
the operators in the same interpreter and finds it running). In process mode each Python
worker is a process of its own: the first one binds the port, the others log that they
could not (their metrics are then not exported; use thread mode, or Flink's reporter).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flink_jobs.job_config import JobConfig

log = logging.getLogger(__name__)

FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FRESHNESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_lock = threading.Lock()
_metrics: JobMetrics | None = None


class JobMetrics:
    """The job's counters and histograms (one set per interpreter, see ``for_job``)."""

    def __init__(self) -> None:
        import prometheus_client as pc

        self.events = pc.Counter(
            "flashrec_flink_events", "Log entries parsed by the job (accepted and refused)."
        )
        self.invalid = pc.Counter(
            "flashrec_flink_invalid_events", "Entries the event model refused (dead-lettered)."
        )
        self.flush_seconds = pc.Histogram(
            "flashrec_flink_flush_seconds",
            "Time of one flush (feature rows, stock, signals), by stage.",
            ["stage"],
            buckets=FLUSH_BUCKETS,
        )
        self.rows = pc.Counter(
            "flashrec_flink_flushed_rows", "Feature rows written, by stage.", ["stage"]
        )
        self.freshness = pc.Histogram(
            "flashrec_flink_freshness_seconds",
            "Age of the oldest log entry in a flush when it was written (entry -> feature).",
            ["stage"],
            buckets=FRESHNESS_BUCKETS,
        )

    def flushed(self, stage: str, seconds: float, rows: int, oldest_entry_age_s: float) -> None:
        self.flush_seconds.labels(stage).observe(seconds)
        self.rows.labels(stage).inc(rows)
        self.freshness.labels(stage).observe(max(0.0, oldest_entry_age_s))


class JobStateCollector:
    """Scrape-time figures: consumer lag/pending per group, newest checkpoint's age/size."""

    def __init__(self, config: JobConfig) -> None:
        self.config = config
        self._redis: Any = None

    def _groups(self) -> list[dict[str, Any]]:
        import redis

        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self.config.settings.redis_url, decode_responses=True, socket_timeout=2.0
            )
        try:
            return list(self._redis.xinfo_groups(self.config.settings.events_stream))
        except redis.RedisError:
            return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from flink_jobs.job_process import latest_checkpoint

        lag = GaugeMetricFamily(
            "flashrec_flink_consumer_lag",
            "Entries of the event log not yet delivered to the job's consumer group.",
            labels=["group"],
        )
        pending = GaugeMetricFamily(
            "flashrec_flink_consumer_pending",
            "Entries delivered but not yet covered by a completed checkpoint.",
            labels=["group"],
        )
        wanted = {self.config.group, self.config.lake_group}
        for group in self._groups():
            if group.get("name") in wanted:
                lag.add_metric([group["name"]], float(group.get("lag") or 0))
                pending.add_metric([group["name"]], float(group.get("pending") or 0))
        yield lag
        yield pending
        latest = latest_checkpoint(self.config.checkpoint_dir)
        if latest is not None:
            age = time.time() - (latest / "_metadata").stat().st_mtime
            yield GaugeMetricFamily(
                "flashrec_flink_checkpoint_age_seconds",
                "Seconds since the newest completed checkpoint (a restart replays from it).",
                value=max(0.0, age),
            )
            yield GaugeMetricFamily(
                "flashrec_flink_checkpoint_size_bytes",
                "Bytes on disk of the newest checkpoint's job folder (its chk-N, shared and "
                "task-owned files: what a restore reads).",
                value=float(_folder_bytes(latest.parent, keep=latest.name)),
            )


def _folder_bytes(job_dir: Path, keep: str) -> int:
    """Size of a job's checkpoint folder, counting only the ``keep`` chk-N of its own."""
    total = 0
    for path in job_dir.rglob("*"):
        parts = path.relative_to(job_dir).parts
        if parts[0].startswith("chk-") and parts[0] != keep:
            continue
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:  # a file removed while we looked (an old checkpoint subsumed)
            continue
    return total


def for_job(config: JobConfig) -> JobMetrics:
    """This interpreter's metrics; the first call also starts the /metrics listener."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = JobMetrics()
            if config.metrics_port:
                _serve(config)
        return _metrics


def _serve(config: JobConfig) -> None:
    import prometheus_client as pc

    from flashrec.admin_http import AdminConfig, AdminServer, process_metrics

    s = config.settings
    pc.REGISTRY.register(JobStateCollector(config))
    server = AdminServer(
        "flink_features",
        AdminConfig(s.admin_host, config.metrics_port, s.admin_token),
        {"/metrics": process_metrics},
    )
    try:
        server.start()
    except OSError as exc:  # process mode: another Python worker serves it
        log.warning("job metrics not served by this worker: %s", exc)
