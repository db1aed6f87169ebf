"""One place where configuration enters the project.

Every knob is an environment variable with a default that runs on one machine (local
Redis, local Spark, Flink mini-cluster, files under var/). Nothing else in the project
reads the environment: build ``Settings.from_env()`` once and pass it around. The table
``SETTINGS`` below is the single source of truth; README.md documents every entry and a
test keeps the two in step.

Why one module of ~1000 lines: every setting's name, default, parser and meaning in one
table (the point of the module); the rest is ~100 lines of resolution.
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


def default_of(field: str) -> Any:
    """The default of a plain setting (one written as a value, not derived from others):
    for components that take it as their own default, so it is written only here."""
    spec = next(s for s in SETTINGS if s.field == field)
    if callable(spec.default):
        raise TypeError(f"{field}'s default is derived from other settings")
    return spec.default


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
        "k8s_object_store",
        "FLASHREC_K8S_OBJECT_STORE",
        "s3://flashrec",
        str,
        "Production: object-storage root of the shared state: lake/, landing/ and flink/ "
        "(checkpoints, savepoints, HA); s3://, gs:// or abfss://.",
    ),
    Setting(
        "k8s_shared_volume",
        "FLASHREC_K8S_SHARED_VOLUME",
        "flashrec-shared",
        str,
        "Production: ReadWriteMany PersistentVolumeClaim mounted at /var/lib/flashrec by the "
        "pods that read or write models (Dagster, model service, scorer): model artifacts "
        "and the BentoML model store (created out of band).",
    ),
    Setting(
        "k8s_dagster_postgres",
        "FLASHREC_K8S_DAGSTER_POSTGRES",
        "dagster@postgresql:5432/dagster",
        str,
        "Production: Dagster's PostgreSQL as user@host:port/database; the password is the "
        "Secret's postgresql-password key.",
    ),
    Setting(
        "k8s_prometheus_url",
        "FLASHREC_K8S_PROMETHEUS_URL",
        "http://prometheus-server.monitoring.svc:80",
        str,
        "Production: Prometheus that scrapes the forecast exporter (read by the Prometheus "
        "adapter that serves the autoscalers' external metrics).",
    ),
    Setting(
        "feast_registry",
        "FLASHREC_FEAST_REGISTRY",
        lambda s: str(s["var_dir"] / "feast" / "registry.db"),
        str,
        "Feast registry: a file, an object-store path (s3://, gs://) or an SQL URL "
        "(postgresql+psycopg://user:pw@host/db: Feast's SQL registry). Production: in the "
        "Secret.",
    ),
    Setting(
        "forecast_port",
        "FLASHREC_FORECAST_PORT",
        3004,
        int,
        "Forecast exporter: port of /metrics, /livez and /readyz.",
    ),
    Setting(
        "forecast_interval_s",
        "FLASHREC_FORECAST_INTERVAL_S",
        1.0,
        float,
        "Forecast exporter: how often the stream counters are sampled.",
    ),
    Setting(
        "forecast_horizon_s",
        "FLASHREC_FORECAST_HORIZON_S",
        60.0,
        float,
        "Forecast: how far ahead the event and read rates are forecast (pod start-up + "
        "metrics scrape + autoscaler sync).",
    ),
    Setting(
        "model_service_admin_port",
        "FLASHREC_MODEL_SERVICE_ADMIN_PORT",
        3013,
        int,
        "Admin surface of the model service: /metrics (batch sizes, latency, versions served).",
    ),
    Setting(
        "scorer_metrics_port",
        "FLASHREC_SCORER_METRICS_PORT",
        3014,
        int,
        "Scorer: port of /metrics (admin host and token as the other admin surfaces).",
    ),
    Setting(
        "attribution_metrics_port",
        "FLASHREC_ATTRIBUTION_METRICS_PORT",
        3015,
        int,
        "Attribution worker: port of /metrics.",
    ),
    Setting(
        "flink_metrics_port",
        "FLASHREC_FLINK_METRICS_PORT",
        3016,
        int,
        "Stream job: /metrics of its Python operators (consumer lag, checkpoint age, flushes).",
    ),
    Setting(
        "flink_reporter_port",
        "FLASHREC_FLINK_REPORTER_PORT",
        3017,
        int,
        "Stream job: Flink's own Prometheus reporter (checkpoint duration and size, JVM); 0 = off.",
    ),
    Setting(
        "prometheus_port",
        "FLASHREC_PROMETHEUS_PORT",
        9090,
        int,
        "Prometheus started by make up (scrapes every process, evaluates the alert rules).",
    ),
    Setting(
        "prometheus_scrape_interval_s",
        "FLASHREC_PROMETHEUS_SCRAPE_INTERVAL_S",
        5.0,
        float,
        "Prometheus: scrape and rule evaluation interval.",
    ),
    Setting(
        "supervisor_backoff_max_s",
        "FLASHREC_SUPERVISOR_BACKOFF_MAX_S",
        30.0,
        float,
        "Supervision: longest wait before restarting a process that keeps crashing (the wait "
        "doubles from 1 s per quick crash and resets after a minute up).",
    ),
    Setting(
        "flink_state_backend",
        "FLASHREC_FLINK_STATE_BACKEND",
        "hashmap",
        str,
        "Stream job: state backend, 'hashmap' (heap, full checkpoints) or 'rocksdb' (RocksDB "
        "on local disk with incremental checkpoints: the production option).",
    ),
    Setting(
        "flink_session_ttl_s",
        "FLASHREC_FLINK_SESSION_TTL_S",
        7200,
        int,
        "Stream job: a session's state is dropped this long after its last event (0 = never).",
    ),
    Setting(
        "flink_user_ttl_s",
        "FLASHREC_FLINK_USER_TTL_S",
        2_592_000,
        int,
        "Stream job: a shopper's state is dropped this long after their last event; a "
        "shopper back later starts from zero (0 = never).",
    ),
    Setting(
        "scorer_list_ttl_s",
        "FLASHREC_SCORER_LIST_TTL_S",
        86_400,
        int,
        "Scorer: a cached list expires this long after it was written.",
    ),
    Setting(
        "scorer_lkg_ttl_s",
        "FLASHREC_SCORER_LKG_TTL_S",
        604_800,
        int,
        "Scorer: a shopper's last-known-good list expires this long after it was written.",
    ),
    Setting(
        "feast_key_ttl_s",
        "FLASHREC_FEAST_KEY_TTL_S",
        2_592_000,
        int,
        "Feast online store (Redis): an entity's key expires this long after its last write "
        "(0 = never).",
    ),
    Setting(
        "drift_recent_hours",
        "FLASHREC_DRIFT_RECENT_HOURS",
        6.0,
        float,
        "Drift: the recent window (hours of event time before the newest data) compared "
        "with everything before it.",
    ),
    Setting(
        "drift_reference_hours",
        "FLASHREC_DRIFT_REFERENCE_HOURS",
        24.0,
        float,
        "Drift: how far before the recent window the reference window reaches (live "
        "windows compared with live windows; 0 = all earlier data).",
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
        "admin_host",
        "FLASHREC_ADMIN_HOST",
        "127.0.0.1",
        str,
        "Admin surface (stats, metrics): interface its ports bind (0.0.0.0 to scrape from "
        "other hosts; then set a token).",
    ),
    Setting(
        "gateway_admin_port",
        "FLASHREC_GATEWAY_ADMIN_PORT",
        3011,
        int,
        "Admin surface of the gateway: /metrics.",
    ),
    Setting(
        "read_api_admin_port",
        "FLASHREC_READ_API_ADMIN_PORT",
        3012,
        int,
        "Admin surface of the read API: /metrics, /ab/stats.",
    ),
    Setting(
        "admin_token",
        "FLASHREC_ADMIN_TOKEN",
        "",
        str,
        "Admin surface: when set, every admin request needs 'Authorization: Bearer <token>'.",
    ),
    Setting(
        "gateway_body_timeout_s",
        "FLASHREC_GATEWAY_BODY_TIMEOUT_S",
        10.0,
        float,
        "Gateway: longest wait for a request body to arrive; slower clients get 408 (keep it "
        "below the gateway's 30 s request timeout).",
    ),
    Setting(
        "automl_trials",
        "FLASHREC_AUTOML_TRIALS",
        12,
        int,
        "Trials of the ranker study in the model pipeline (make bench-automl runs 50).",
    ),
    Setting(
        "sequence_model",
        "FLASHREC_SEQUENCE_MODEL",
        "on",
        str,
        "Model pipeline: train the session sequence model (Transformer) as a tier-1 source, "
        "ranker features and a standalone challenger ('on' or 'off').",
    ),
    Setting(
        "sequence_trials",
        "FLASHREC_SEQUENCE_TRIALS",
        3,
        int,
        "Trials of the sequence model's study in the model pipeline (0: its defaults).",
    ),
    Setting(
        "sequence_epochs",
        "FLASHREC_SEQUENCE_EPOCHS",
        6,
        int,
        "Most epochs a sequence-model trial trains (the study's fidelity axis).",
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
        "flink_checkpoint_timeout_s",
        "FLASHREC_FLINK_CHECKPOINT_TIMEOUT_S",
        90,
        int,
        "Stream job: a checkpoint not complete by then is abandoned and the job restarts from "
        "the last complete one (Flink's default waits 10 minutes, during which nothing is "
        "acknowledged on the log and no lake file commits).",
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
        "flink_connector_dir",
        "FLASHREC_FLINK_CONNECTOR_DIR",
        lambda s: s["var_dir"] / "flink" / "jars",
        _path,
        "Stream job, Kafka backend: folder of the Kafka connector jars shipped with the job "
        "(flink-connector-kafka, kafka-clients; `python -m flink_jobs.kafka_jars` fetches them).",
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
    Setting(
        "adaptive_loop",
        "FLASHREC_ADAPTIVE_LOOP",
        "on",
        str,
        "The one switch of the adaptive loop: 'on' starts its Dagster sensors and "
        "schedules running (live lake refresh, drift, retrain, rollout); 'off' leaves them "
        "stopped.",
    ),
    Setting(
        "live_lake_roll_s",
        "FLASHREC_LIVE_LAKE_ROLL_S",
        30.0,
        float,
        "Live lake: the stream job rolls a landing file this often (it becomes visible at "
        "the next checkpoint).",
    ),
    Setting(
        "live_refresh_interval_s",
        "FLASHREC_LIVE_REFRESH_INTERVAL_S",
        60,
        int,
        "Live lake: how often the refresh sensor looks for new landing files.",
    ),
    Setting(
        "retrain_cooldown_s",
        "FLASHREC_RETRAIN_COOLDOWN_S",
        1800,
        int,
        "Drift sensor: least time between two drift-triggered retrains.",
    ),
    Setting(
        "rollout_interval_s",
        "FLASHREC_ROLLOUT_INTERVAL_S",
        30,
        int,
        "Rollout sensor: how often the running test is looked at.",
    ),
    Setting(
        "canary_share",
        "FLASHREC_CANARY_SHARE",
        0.02,
        float,
        "Rollout: traffic share of the challenger in canary (operators may change it at run "
        "time in flashrec:rollout:test).",
    ),
    Setting(
        "ab_alpha",
        "FLASHREC_AB_ALPHA",
        0.05,
        float,
        "Rollout: false-decision rate of the sequential test (always-valid p-values).",
    ),
    Setting(
        "ab_mde",
        "FLASHREC_AB_MDE",
        0.01,
        float,
        "Rollout: minimum detectable effect, absolute difference in conversion rate, the "
        "sequential test is tuned for.",
    ),
    Setting(
        "ab_max_error_rate",
        "FLASHREC_AB_MAX_ERROR_RATE",
        0.01,
        float,
        "Rollout guardrail: a challenger failing more of its lists than this is rolled back.",
    ),
    Setting(
        "attribution_window_s",
        "FLASHREC_ATTRIBUTION_WINDOW_S",
        1800,
        int,
        "Attribution: a click, cart or purchase counts for an impression this recent.",
    ),
    Setting(
        "model_watch_interval_s",
        "FLASHREC_MODEL_WATCH_INTERVAL_S",
        1.0,
        float,
        "Model service: how often the pinned model versions are re-read (hot swap).",
    ),
    Setting(
        "scorer_live_slots",
        "FLASHREC_SCORER_LIVE_SLOTS",
        3,
        int,
        "Incremental candidates: positions in each personalized top 10 kept for live "
        "candidates (co-visitation and trending from the stream).",
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
    k8s_object_store: str
    k8s_shared_volume: str
    k8s_dagster_postgres: str
    k8s_prometheus_url: str
    feast_registry: str
    forecast_port: int
    forecast_interval_s: float
    forecast_horizon_s: float
    model_service_admin_port: int
    scorer_metrics_port: int
    attribution_metrics_port: int
    flink_metrics_port: int
    flink_reporter_port: int
    prometheus_port: int
    prometheus_scrape_interval_s: float
    supervisor_backoff_max_s: float
    flink_state_backend: str
    flink_session_ttl_s: int
    flink_user_ttl_s: int
    scorer_list_ttl_s: int
    scorer_lkg_ttl_s: int
    feast_key_ttl_s: int
    drift_recent_hours: float
    drift_reference_hours: float
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
    admin_host: str
    gateway_admin_port: int
    read_api_admin_port: int
    admin_token: str
    gateway_body_timeout_s: float
    automl_trials: int
    sequence_model: str
    sequence_trials: int
    sequence_epochs: int
    flink_checkpoint_dir: Path
    flink_checkpoint_interval_ms: int
    flink_checkpoint_timeout_s: int
    flink_parallelism: int
    flink_jobmanager: str
    flink_execution_mode: str
    flink_buffer_timeout_ms: int
    flink_connector_dir: Path
    features_writer: str
    features_flush_ms: int
    features_flush_rows: int
    adaptive_loop: str
    live_lake_roll_s: float
    live_refresh_interval_s: int
    retrain_cooldown_s: int
    rollout_interval_s: int
    canary_share: float
    ab_alpha: float
    ab_mde: float
    ab_max_error_rate: float
    attribution_window_s: int
    model_watch_interval_s: float
    scorer_live_slots: int
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
        if self.adaptive_loop not in {"on", "off"}:
            raise ValueError(
                f"FLASHREC_ADAPTIVE_LOOP must be 'on' or 'off', got {self.adaptive_loop!r}"
            )
        if not 0.0 < self.canary_share < 1.0:
            raise ValueError(f"FLASHREC_CANARY_SHARE must be in (0, 1), got {self.canary_share}")
        if self.flink_state_backend not in {"hashmap", "rocksdb"}:
            raise ValueError(
                "FLASHREC_FLINK_STATE_BACKEND must be 'hashmap' or 'rocksdb', "
                f"got {self.flink_state_backend!r}"
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
