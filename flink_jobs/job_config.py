"""What the features job needs to know, resolved once in the client and shipped to operators.

The Flink operators run in another interpreter (embedded in the TaskManager JVM in thread
mode, or on a cluster), so they cannot read ``Settings.from_env()`` themselves: the client
resolves a ``JobConfig`` (a plain, picklable dataclass) and every operator receives it.

Knobs that belong in ``flashrec.settings`` are read from ``Settings`` by name when present
(``getattr`` with the default below), so adding them there needs no change here; until then
they come from the defaults or the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flashrec.settings import Settings

#: Redis keys the job writes for the serving side (documented in the README proposal).
STOCK_KEY = "flashrec:stock"  # hash item_id -> current stock level
SOLDOUT_KEY = "flashrec:soldout"  # set of item_ids whose stock is 0
CATALOG_KEY = "flashrec:catalog:category"  # hash item_id -> category (from item_created)
STATS_KEY = "flashrec:flink:features:stats"  # hash of counters (invalid, flushes, rows)
FEATURES_PREFIX = "flashrec:features"  # redis writer only: hash <prefix>:<view>:<key>

WRITERS = ("feast", "redis")
BOUNDED_MODES = ("none", "drain", "idle")

# (Settings field, JobConfig field, default): read from Settings when it has the field.
_FROM_SETTINGS: tuple[tuple[str, str, Any], ...] = (
    ("flink_checkpoint_dir", "checkpoint_dir", None),  # None: <var_dir>/flink/checkpoints
    ("flink_checkpoint_interval_ms", "checkpoint_interval_ms", 1000),
    ("flink_parallelism", "parallelism", 1),
    ("flink_jobmanager", "jobmanager", "local"),
    ("flink_execution_mode", "execution_mode", "thread"),
    ("flink_buffer_timeout_ms", "buffer_timeout_ms", 2),
    ("features_writer", "writer", "feast"),
    ("features_flush_ms", "flush_ms", 20),
    ("features_flush_rows", "flush_rows", 2000),
    ("stock_key", "stock_key", STOCK_KEY),
    ("soldout_key", "soldout_key", SOLDOUT_KEY),
)


@dataclass(frozen=True)
class JobConfig:
    """Everything the running job reads (see ``from_settings`` for where each comes from)."""

    settings: Settings
    group: str = "flink-features"
    #: Source splits. One keeps the log's order per item (an item_created is processed
    #: before that item's first view, so the category is known): a Redis stream is one
    #: ordered log and one consumer reads ~190k events/s, far more than the Python side.
    consumers: int = 1
    consumer_prefix: str = "features"
    parallelism: int = 1
    execution_mode: str = "thread"
    jobmanager: str = "local"  # "local" (mini-cluster) or "host:port" of a REST endpoint
    checkpoint_dir: Path = Path("var/flink/checkpoints")
    checkpoint_interval_ms: int = 1000
    restore_from: str | None = None  # a chk-N folder (path or file:// URI)
    writer: str = "feast"
    flush_ms: int = 20
    flush_rows: int = 2000
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
    buffer_timeout_ms: int = 2
    jar: Path | None = None  # the Redis source's jar; None: <var_dir>/flink/ (built if stale)
    extra_flink_conf: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.writer not in WRITERS:
            raise ValueError(f"writer must be one of {WRITERS}, got {self.writer!r}")
        if self.bounded not in BOUNDED_MODES:
            raise ValueError(f"bounded must be one of {BOUNDED_MODES}, got {self.bounded!r}")
        if self.execution_mode not in ("thread", "process"):
            raise ValueError("execution_mode must be 'thread' or 'process'")
        if min(self.consumers, self.parallelism, self.shards, self.flush_rows) < 1:
            raise ValueError("consumers, parallelism, shards and flush_rows must be >= 1")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> JobConfig:
        """Defaults <- Settings (when it has the field) <- explicit overrides (CLI, tests)."""
        values: dict[str, Any] = {}
        for settings_field, name, default in _FROM_SETTINGS:
            values[name] = getattr(settings, settings_field, default)
        if values["checkpoint_dir"] is None:
            values["checkpoint_dir"] = settings.var_dir / "flink" / "checkpoints"
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
