"""One place where configuration enters the project.

Every knob is an environment variable with a default that runs on one machine (local
Redis, local Spark, Flink mini-cluster, files under var/). Nothing else in the project
reads the environment: build ``Settings.from_env()`` once and pass it around. The table
``SETTINGS`` below is the single source of truth; README.md documents every entry and a
test keeps the two in step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    """One environment variable: its field name, default and meaning."""

    field: str
    env: str
    default: Callable[[dict[str, Any]], Any] | Any
    parse: Callable[[str], Any]
    doc: str


def _path(raw: str) -> Path:
    return Path(raw).expanduser().resolve()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "var_dir",
        "FLASHREC_VAR_DIR",
        PROJECT_ROOT / "var",
        _path,
        "Working data (lake, landing files, artifacts, Dagster home, Redis data).",
    ),
    Setting(
        "lake_dir",
        "FLASHREC_LAKE_DIR",
        lambda s: s["var_dir"] / "lake",
        _path,
        "Root of the Delta Lake tables (bronze/, silver/, gold/).",
    ),
    Setting(
        "landing_dir",
        "FLASHREC_LANDING_DIR",
        lambda s: s["var_dir"] / "landing",
        _path,
        "Raw event files waiting for ingestion: <source>/dt=YYYY-MM-DD/*.jsonl.",
    ),
    Setting(
        "artifacts_dir",
        "FLASHREC_ARTIFACTS_DIR",
        lambda s: s["var_dir"] / "artifacts",
        _path,
        "Model artifacts, reports and plots.",
    ),
    Setting(
        "shared_data_dir",
        "FLASHREC_SHARED_DATA_DIR",
        PROJECT_ROOT.parent / "shared" / "data",
        _path,
        "Folder holding real datasets (diginetica/, diginetica_raw/).",
    ),
    Setting(
        "redis_url",
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        str,
        "Redis for the event log, online features and the serving cache.",
    ),
    Setting(
        "events_stream",
        "FLASHREC_EVENTS_STREAM",
        "flashrec:events",
        str,
        "Event log stream of validated events.",
    ),
    Setting(
        "deadletter_stream",
        "FLASHREC_DEADLETTER_STREAM",
        "flashrec:deadletter",
        str,
        "Dead-letter stream: rejected payloads with reason and time.",
    ),
    Setting(
        "rescore_stream",
        "FLASHREC_RESCORE_STREAM",
        "flashrec:rescore",
        str,
        "Signals (user, reason) that a shopper's list must be recomputed.",
    ),
    Setting(
        "eventlog_backend",
        "FLASHREC_EVENTLOG_BACKEND",
        "redis",
        str,
        "Event log backend: 'redis' (Redis Streams) or 'kafka' (production).",
    ),
    Setting(
        "kafka_bootstrap_servers",
        "KAFKA_BOOTSTRAP_SERVERS",
        "127.0.0.1:9092",
        str,
        "Kafka brokers (host:port,...).",
    ),
    Setting(
        "kafka_events_topic",
        "FLASHREC_KAFKA_EVENTS_TOPIC",
        "flashrec.events",
        str,
        "Kafka topic of validated events.",
    ),
    Setting(
        "kafka_deadletter_topic",
        "FLASHREC_KAFKA_DEADLETTER_TOPIC",
        "flashrec.deadletter",
        str,
        "Kafka dead-letter topic.",
    ),
    Setting(
        "kafka_partitions",
        "FLASHREC_KAFKA_PARTITIONS",
        6,
        int,
        "Partitions of the events topic when created (production: 12).",
    ),
    Setting(
        "kafka_replication",
        "FLASHREC_KAFKA_REPLICATION",
        1,
        int,
        "Replication factor when created (production: 3, min.insync.replicas=2).",
    ),
    Setting(
        "dedupe_window_s",
        "FLASHREC_DEDUPE_WINDOW_S",
        900,
        int,
        "How long accepted event_ids are remembered to refuse retries (~100 B per id in Redis).",
    ),
    Setting(
        "gateway_max_batch",
        "FLASHREC_GATEWAY_MAX_BATCH",
        1000,
        int,
        "Most events in one POST /events.",
    ),
    Setting(
        "events_maxlen",
        "FLASHREC_EVENTS_MAXLEN",
        1_000_000,
        int,
        "Retention of the event stream: entries kept (approximate trimming on append).",
    ),
    Setting(
        "deadletter_maxlen",
        "FLASHREC_DEADLETTER_MAXLEN",
        100_000,
        int,
        "Retention of the dead-letter stream, in entries.",
    ),
    Setting(
        "profile",
        "FLASHREC_PROFILE",
        "local",
        str,
        "Deployment profile: 'local' (one machine) or 'production' (Kubernetes via dagster-k8s).",
    ),
    Setting(
        "image_registry",
        "FLASHREC_IMAGE_REGISTRY",
        "registry.example.com/flashrec",
        str,
        "Production: container registry path of the project's images.",
    ),
    Setting(
        "image_tag", "FLASHREC_IMAGE_TAG", "0.1.0", str, "Production: tag of the project's images."
    ),
    Setting("k8s_namespace", "FLASHREC_K8S_NAMESPACE", "flashrec", str, "Production: namespace."),
    Setting(
        "k8s_secret",
        "FLASHREC_K8S_SECRET",
        "flashrec-secrets",
        str,
        "Production: name of the Secret holding REDIS_URL, Kafka and database credentials "
        "(created out of band; manifests only reference it).",
    ),
    Setting(
        "drift_recent_hours",
        "FLASHREC_DRIFT_RECENT_HOURS",
        6.0,
        float,
        "Drift: the recent window (hours of event time before the newest data) compared "
        "with everything before it.",
    ),
    Setting("dagster_port", "FLASHREC_DAGSTER_PORT", 3000, int, "Dagster UI port (make up)."),
    Setting("gateway_port", "FLASHREC_GATEWAY_PORT", 3001, int, "Event gateway port (make up)."),
    Setting("read_api_port", "FLASHREC_READ_API_PORT", 3002, int, "Read API port (make up)."),
    Setting(
        "model_service_port",
        "FLASHREC_MODEL_SERVICE_PORT",
        3003,
        int,
        "Model inference service port (make up).",
    ),
    Setting(
        "model_service_url",
        "FLASHREC_MODEL_SERVICE_URL",
        lambda s: f"http://127.0.0.1:{s['model_service_port']}",
        str,
        "Where the scorer reaches the model service.",
    ),
    Setting(
        "model_device",
        "FLASHREC_MODEL_DEVICE",
        "cpu",
        str,
        "XGBoost device for training and inference ('cuda' on GPU hosts).",
    ),
    Setting(
        "scorer_group",
        "FLASHREC_SCORER_GROUP",
        "scorer",
        str,
        "Scorer: consumer group on the rescore stream.",
    ),
    Setting(
        "scorer_consumer",
        "FLASHREC_SCORER_CONSUMER",
        "scorer-1",
        str,
        "Scorer: consumer name; keep it across restarts so pending signals are replayed.",
    ),
    Setting(
        "scorer_batch_size",
        "FLASHREC_SCORER_BATCH_SIZE",
        1024,
        int,
        "Scorer: most signals per batch (a backlog coalesces: one computation per shopper).",
    ),
    Setting("scorer_top_n", "FLASHREC_SCORER_TOP_N", 50, int, "Scorer: items per cached list."),
    Setting(
        "scorer_segment_interval_s",
        "FLASHREC_SCORER_SEGMENT_INTERVAL_S",
        30,
        int,
        "Scorer: how often popularity/segment lists are refreshed.",
    ),
    Setting(
        "scorer_prewarm_window_s",
        "FLASHREC_SCORER_PREWARM_WINDOW_S",
        3600,
        int,
        "Scorer: how far back pre-warming looks for active shoppers.",
    ),
    Setting(
        "ab_min_sessions",
        "FLASHREC_AB_MIN_SESSIONS",
        1000,
        int,
        "Rollout: lists a shadow must produce, and sessions each arm needs, before deciding.",
    ),
    Setting(
        "serving_max_age_s",
        "FLASHREC_SERVING_MAX_AGE_S",
        600.0,
        float,
        "Read API: a cached list older than this is stale (-> last-known-good, popularity).",
    ),
    Setting(
        "serving_lkg_max_age_s",
        "FLASHREC_SERVING_LKG_MAX_AGE_S",
        86400.0,
        float,
        "Read API: oldest usable last-known-good list.",
    ),
    Setting(
        "serving_redis_timeout_ms",
        "FLASHREC_SERVING_REDIS_TIMEOUT_MS",
        100.0,
        float,
        "Read API: Redis read bound before answering from process memory.",
    ),
    Setting(
        "serving_default_variant",
        "FLASHREC_SERVING_DEFAULT_VARIANT",
        "champion",
        str,
        "Read API: variant served when no A/B shares are set.",
    ),
    Setting(
        "serving_ab_refresh_s",
        "FLASHREC_SERVING_AB_REFRESH_S",
        1.0,
        float,
        "Read API: how often shares, shadow set and the popularity copy are re-read.",
    ),
    Setting(
        "serving_impressions_maxlen",
        "FLASHREC_SERVING_IMPRESSIONS_MAXLEN",
        1_000_000,
        int,
        "Read API: retention of the impression stream (entries).",
    ),
    Setting(
        "automl_trials",
        "FLASHREC_AUTOML_TRIALS",
        12,
        int,
        "Trials of the ranker study in the model pipeline (make bench-automl runs 50).",
    ),
    Setting(
        "flink_checkpoint_dir",
        "FLASHREC_FLINK_CHECKPOINT_DIR",
        lambda s: s["var_dir"] / "flink" / "checkpoints",
        _path,
        "Stream job: checkpoint directory (object storage in production).",
    ),
    Setting(
        "flink_checkpoint_interval_ms",
        "FLASHREC_FLINK_CHECKPOINT_INTERVAL_MS",
        1000,
        int,
        "Stream job: checkpoint interval.",
    ),
    Setting(
        "flink_parallelism",
        "FLASHREC_FLINK_PARALLELISM",
        1,
        int,
        "Stream job: operator parallelism.",
    ),
    Setting(
        "flink_jobmanager",
        "FLASHREC_FLINK_JOBMANAGER",
        "local",
        str,
        "Stream job: 'local' (mini-cluster) or host:port of a cluster's REST endpoint.",
    ),
    Setting(
        "flink_execution_mode",
        "FLASHREC_FLINK_EXECUTION_MODE",
        "thread",
        str,
        "Stream job: PyFlink Python execution mode ('thread' or 'process').",
    ),
    Setting(
        "flink_buffer_timeout_ms",
        "FLASHREC_FLINK_BUFFER_TIMEOUT_MS",
        2,
        int,
        "Stream job: longest wait before a partly filled network buffer is sent between "
        "operators (lower: less latency, more CPU per event).",
    ),
    Setting(
        "features_writer",
        "FLASHREC_FEATURES_WRITER",
        "feast",
        str,
        "Stream job: where online features go ('feast' SDK, or 'redis' for benchmarks).",
    ),
    Setting(
        "features_flush_ms",
        "FLASHREC_FEATURES_FLUSH_MS",
        20,
        int,
        "Stream job: flush interval (latest values of changed keys are written; stretched "
        "under load).",
    ),
    Setting(
        "features_flush_rows",
        "FLASHREC_FEATURES_FLUSH_ROWS",
        2000,
        int,
        "Stream job: buffered rows that force a flush.",
    ),
    Setting("seed", "FLASHREC_SEED", 42, int, "Seed of the simulator and of model training."),
    Setting(
        "spark_master",
        "FLASHREC_SPARK_MASTER",
        "local[2]",
        str,
        "Spark master URL (local[N] or spark://host:7077).",
    ),
    Setting(
        "spark_driver_memory",
        "FLASHREC_SPARK_DRIVER_MEMORY",
        "2g",
        str,
        "Spark driver memory (set before the session starts).",
    ),
    Setting(
        "spark_shuffle_partitions",
        "FLASHREC_SPARK_SHUFFLE_PARTITIONS",
        4,
        int,
        "spark.sql.shuffle.partitions; small data wants few.",
    ),
    Setting(
        "lake_writer",
        "FLASHREC_LAKE_WRITER",
        "delta-rs",
        str,
        "How Delta commits are made: 'delta-rs' (default, no JVM jars needed) or "
        "'delta-spark' (clusters that have the Delta jars).",
    ),
    Setting(
        "lake_start_date",
        "FLASHREC_LAKE_START_DATE",
        "2026-11-20",
        str,
        "First day of the lake's daily partitions (YYYY-MM-DD).",
    ),
    Setting(
        "allowed_lateness_days",
        "FLASHREC_ALLOWED_LATENESS_DAYS",
        1,
        int,
        "How many days after its event day a late event is still folded into silver.",
    ),
    Setting(
        "max_future_skew_s",
        "FLASHREC_MAX_FUTURE_SKEW_S",
        300.0,
        float,
        "Events stamped further than this ahead of ingestion time are rejected.",
    ),
    Setting(
        "max_event_bytes",
        "FLASHREC_MAX_EVENT_BYTES",
        8192,
        int,
        "Payloads larger than this are rejected.",
    ),
    Setting(
        "gateway_max_body_bytes",
        "FLASHREC_GATEWAY_MAX_BODY_BYTES",
        lambda s: s["gateway_max_batch"] * s["max_event_bytes"] + 65536,
        int,
        "Largest POST /events body (default: max batch x max event size + 64 KiB).",
    ),
    Setting(
        "session_gap_minutes",
        "FLASHREC_SESSION_GAP_MINUTES",
        30,
        int,
        "Inactivity gap that starts a new visit when sessionizing.",
    ),
    Setting("sim_users", "FLASHREC_SIM_USERS", 2000, int, "Simulator: shoppers."),
    Setting("sim_items", "FLASHREC_SIM_ITEMS", 500, int, "Simulator: catalog size."),
    Setting("sim_days", "FLASHREC_SIM_DAYS", 3, int, "Simulator: days of history."),
    Setting(
        "sim_sessions_per_day",
        "FLASHREC_SIM_SESSIONS_PER_DAY",
        1500,
        int,
        "Simulator: sessions per ordinary day (the flash sale multiplies it).",
    ),
    Setting(
        "sim_start_date",
        "FLASHREC_SIM_START_DATE",
        "2026-11-20",
        str,
        "Simulator: first day of history (YYYY-MM-DD).",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; build with ``Settings.from_env()``."""

    var_dir: Path
    lake_dir: Path
    landing_dir: Path
    artifacts_dir: Path
    shared_data_dir: Path
    redis_url: str
    events_stream: str
    deadletter_stream: str
    rescore_stream: str
    eventlog_backend: str
    kafka_bootstrap_servers: str
    kafka_events_topic: str
    kafka_deadletter_topic: str
    kafka_partitions: int
    kafka_replication: int
    dedupe_window_s: int
    gateway_max_batch: int
    events_maxlen: int
    deadletter_maxlen: int
    profile: str
    image_registry: str
    image_tag: str
    k8s_namespace: str
    k8s_secret: str
    drift_recent_hours: float
    dagster_port: int
    gateway_port: int
    read_api_port: int
    model_service_port: int
    model_service_url: str
    model_device: str
    scorer_group: str
    scorer_consumer: str
    scorer_batch_size: int
    scorer_top_n: int
    scorer_segment_interval_s: int
    scorer_prewarm_window_s: int
    ab_min_sessions: int
    serving_max_age_s: float
    serving_lkg_max_age_s: float
    serving_redis_timeout_ms: float
    serving_default_variant: str
    serving_ab_refresh_s: float
    serving_impressions_maxlen: int
    automl_trials: int
    flink_checkpoint_dir: Path
    flink_checkpoint_interval_ms: int
    flink_parallelism: int
    flink_jobmanager: str
    flink_execution_mode: str
    flink_buffer_timeout_ms: int
    features_writer: str
    features_flush_ms: int
    features_flush_rows: int
    seed: int
    spark_master: str
    spark_driver_memory: str
    spark_shuffle_partitions: int
    lake_writer: str
    lake_start_date: str
    allowed_lateness_days: int
    max_future_skew_s: float
    max_event_bytes: int
    gateway_max_body_bytes: int
    session_gap_minutes: int
    sim_users: int
    sim_items: int
    sim_days: int
    sim_sessions_per_day: int
    sim_start_date: str

    def __post_init__(self) -> None:
        if self.profile not in {"local", "production"}:
            raise ValueError(
                f"FLASHREC_PROFILE must be 'local' or 'production', got {self.profile!r}"
            )
        if self.eventlog_backend not in {"redis", "kafka"}:
            raise ValueError(
                "FLASHREC_EVENTLOG_BACKEND must be 'redis' or 'kafka', "
                f"got {self.eventlog_backend!r}"
            )
        if self.lake_writer not in {"delta-rs", "delta-spark"}:
            raise ValueError(
                f"FLASHREC_LAKE_WRITER must be 'delta-rs' or 'delta-spark', "
                f"got {self.lake_writer!r}"
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the environment now (not at import), then apply explicit overrides.

        Overrides win over the environment and feed the defaults that derive from them
        (``var_dir=...`` moves the lake too unless ``FLASHREC_LAKE_DIR`` is set).
        """
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for spec in SETTINGS:
            if spec.field in overrides:
                values[spec.field] = overrides[spec.field]
                continue
            raw = env.get(spec.env, "")
            if raw != "":
                try:
                    values[spec.field] = spec.parse(raw)
                except ValueError as exc:
                    raise ValueError(f"environment variable {spec.env}={raw!r}: {exc}") from exc
            elif callable(spec.default):
                values[spec.field] = spec.default(values)
            else:
                values[spec.field] = spec.default
        return cls(**values)

    def table_path(self, name: str) -> Path:
        """Folder of one lake table, e.g. ``table_path("silver/events")``."""
        return self.lake_dir / name

    @property
    def dagster_home(self) -> Path:
        return self.var_dir / "dagster"
