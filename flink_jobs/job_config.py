"""What the features job needs to know, resolved once in the client and shipped to operators.

The Flink operators run in another interpreter (embedded in the TaskManager JVM in thread
mode, or on a cluster), so they cannot read ``Settings.from_env()`` themselves: the client
resolves a ``JobConfig`` (a plain, picklable dataclass) and every operator receives it.

The knobs a deployment tunes come from ``Settings`` (their defaults are written there
once); the rest are the job's own constants, or command-line overrides.
"""

from __future__ import annotations

import os
import site
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flashrec.serving import keys
from flashrec.settings import PROJECT_ROOT, Settings

#: The job's name on a cluster (how ``status`` and ``health`` find it).
JOB_NAME = "flashrec-features"

#: Redis keys the job writes for the serving side (documented in the README proposal).
STOCK_KEY = "flashrec:stock"  # hash item_id -> current stock level
SOLDOUT_KEY = "flashrec:soldout"  # set of item_ids whose stock is 0
CATALOG_KEY = keys.CATALOG_CATEGORY  # hash item_id -> category (from item_created)
STATS_KEY = "flashrec:flink:features:stats"  # hash of counters (invalid, flushes, rows)
FEATURES_PREFIX = "flashrec:features"  # redis writer only: hash <prefix>:<view>:<key>

WRITERS = ("feast", "redis")
BOUNDED_MODES = ("none", "drain", "idle")

#: (Settings field, JobConfig field): the knobs whose defaults live in ``flashrec.settings``.
_FROM_SETTINGS: tuple[tuple[str, str], ...] = (
    ("flink_checkpoint_dir", "checkpoint_dir"),
    ("flink_checkpoint_interval_ms", "checkpoint_interval_ms"),
    ("flink_checkpoint_timeout_s", "checkpoint_timeout_s"),
    ("flink_parallelism", "parallelism"),
    ("flink_jobmanager", "jobmanager"),
    ("flink_execution_mode", "execution_mode"),
    ("flink_buffer_timeout_ms", "buffer_timeout_ms"),
    ("features_writer", "writer"),
    ("features_flush_ms", "flush_ms"),
    ("features_flush_rows", "flush_rows"),
    ("live_lake_roll_s", "lake_roll_s"),
    ("flink_state_backend", "state_backend"),
    ("flink_session_ttl_s", "session_ttl_s"),
    ("flink_user_ttl_s", "user_ttl_s"),
    ("flink_metrics_port", "metrics_port"),
    ("flink_reporter_port", "reporter_port"),
)


@dataclass(frozen=True)
class JobConfig:
    """Everything the running job reads (see ``from_settings`` for where each comes from)."""

    settings: Settings
    # -- from Settings (``from_settings``; their defaults are written there) --------------
    checkpoint_dir: Path
    checkpoint_interval_ms: int
    checkpoint_timeout_s: int
    parallelism: int
    jobmanager: str  # "local" (mini-cluster) or "host:port" of a REST endpoint
    execution_mode: str
    buffer_timeout_ms: int
    writer: str
    flush_ms: int
    flush_rows: int
    lake_roll_s: float  # live lake (``lake_sink``): how often landing files roll
    #: "hashmap" (heap, full checkpoints) or "rocksdb" (local disk, incremental checkpoints).
    state_backend: str
    #: Processing-time TTL of a key's view state, per view entity (0 = kept forever):
    #: sessions and shoppers come and go, items are the catalog.
    session_ttl_s: int
    user_ttl_s: int
    metrics_port: int  # /metrics of the Python operators (0 = none)
    reporter_port: int  # Flink's Prometheus reporter (0 = none; local mini-cluster only)
    # -- the job's own ----------------------------------------------------------------------
    group: str = "flink-features"
    #: Source splits. One keeps the log's order per item (an item_created is processed
    #: before that item's first view, so the category is known): a Redis stream is one
    #: ordered log and one consumer reads ~190k events/s, far more than the Python side.
    #: Kafka keeps each item on one partition (keyed by item_id), and a partition is read by
    #: one reader, so there the order per item holds with any number of readers.
    consumers: int = 1
    consumer_prefix: str = "features"
    restore_from: str | None = None  # a chk-N folder (path or file:// URI)
    shards: int = 1  # key groups of each stage (= parallelism); more = more, smaller writes
    stock_key: str = STOCK_KEY
    soldout_key: str = SOLDOUT_KEY
    catalog_key: str = CATALOG_KEY
    stats_key: str = STATS_KEY
    features_prefix: str = FEATURES_PREFIX
    rescore_maxlen: int = 100_000
    catalog_cache_s: float = 30.0
    bounded: str = "none"  # "drain": stop at the stream's last id at start; "idle": on silence
    stop_at_id: str | None = None
    idle_polls: int = 20
    block_ms: int = 20
    batch_size: int = 1000
    #: Live lake (``lake_sink``): accepted events into the landing files bronze ingests.
    lake: bool = True
    lake_group: str = "flink-lake"
    jar: Path | None = None  # the Redis source's jar; None: <var_dir>/flink/ (built if stale)
    #: True in the client that ``bin/flink run`` starts on behalf of ``run --jobmanager``:
    #: it builds and submits the dataflow instead of launching ``bin/flink run`` again.
    submitted: bool = False
    extra_flink_conf: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.writer not in WRITERS:
            raise ValueError(f"writer must be one of {WRITERS}, got {self.writer!r}")
        if self.bounded not in BOUNDED_MODES:
            raise ValueError(f"bounded must be one of {BOUNDED_MODES}, got {self.bounded!r}")
        if self.execution_mode not in ("thread", "process"):
            raise ValueError("execution_mode must be 'thread' or 'process'")
        if self.state_backend not in ("hashmap", "rocksdb"):
            raise ValueError("state_backend must be 'hashmap' or 'rocksdb'")
        if min(self.consumers, self.parallelism, self.shards, self.flush_rows) < 1:
            raise ValueError("consumers, parallelism, shards and flush_rows must be >= 1")
        if self.backend == "kafka" and self.bounded == "idle":
            raise ValueError("bounded 'idle' needs the Redis backend (Kafka: use 'drain')")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> JobConfig:
        """Settings <- explicit overrides (CLI, tests)."""
        values: dict[str, Any] = {name: getattr(settings, field) for field, name in _FROM_SETTINGS}
        values.update({k: v for k, v in overrides.items() if v is not None})
        values.setdefault("shards", values["parallelism"])
        values["checkpoint_dir"] = Path(values["checkpoint_dir"]).resolve()
        return cls(settings=settings, **values)

    def with_(self, **changes: Any) -> JobConfig:
        return replace(self, **changes)

    @property
    def flink_dir(self) -> Path:
        """Pidfile, logs and the source jar live here (``var/flink``)."""
        return self.settings.var_dir / "flink"

    @property
    def jar_path(self) -> Path:
        return Path(self.jar) if self.jar else self.flink_dir / "flashrec-redis-source.jar"

    @property
    def source_parallelism(self) -> int:
        return self.consumers

    @property
    def backend(self) -> str:
        """The event log the sources read: ``redis`` (Streams) or ``kafka``."""
        return self.settings.eventlog_backend

    @property
    def on_cluster(self) -> bool:
        """Submitted to a session cluster's REST endpoint (else a local mini-cluster)."""
        return self.jobmanager != "local"

    @property
    def connector_dir(self) -> Path:
        """The Kafka connector jars (``flink_jobs.kafka_jars``)."""
        return self.settings.flink_connector_dir

    def ttl_s(self, entity: str) -> int:
        """State TTL of a view keyed by ``entity`` (0: none)."""
        return {"session_id": self.session_ttl_s, "user_id": self.user_ttl_s}.get(entity, 0)


def thread_mode_pythonpath(environ: dict[str, str] | None = None) -> str:
    """PYTHONPATH for thread mode's embedded interpreter (pemja inside the JVM).

    It does not see a virtualenv whose python is a symlink (no pyvenv.cfg lookup), so it
    gets the venv's site-packages and the project root explicitly.
    """
    env = os.environ if environ is None else environ
    parts = [*site.getsitepackages(), str(PROJECT_ROOT)]
    parts += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in parts]
    return os.pathsep.join(parts)
