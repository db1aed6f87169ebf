"""Batch/stream parity: the same events through the Spark path and the Flink path must give
the same value for every feature of every key.

    python -m bench.parity [--users 300 --items 100 --days 1] [--diginetica-events 3000]
                           [--backend redis|kafka [--kafka-test-broker]]

Data: one simulated flash sale (deterministic; the surge is on its last day) plus a slice
of the real DIGINETICA raw export (its first views and purchases; it has no catalog events,
so its items have no category on either path).

- Spark path: ``spark_jobs.features`` exactly as the lake runs it (``feature_events`` joins
  the catalog's category onto storefront events, ``view_history`` folds each key's events
  in a pandas UDF); the last history row per key is the key's final value.
- Flink path: the events (as canonical JSON) go into a fresh event log (``--backend``: a
  Redis stream, or a Kafka topic on ``KAFKA_BOOTSTRAP_SERVERS`` or, with
  ``--kafka-test-broker``, on the tests' tansu broker), the features job runs bounded
  (``run --bounded drain``) in its own process and writes Feast's online store; values
  are read back through Feast.
- Reference: each view's ``fold`` in-process (``flink_jobs.job_check``), a sanity check of
  both (if ``spark_jobs.features`` is missing the Spark column is this fold, and the output
  says so).

A (view, key, feature) counts as a mismatch when the paths disagree. The last line is
``parity events=<n> keys=<k> features=<f> mismatches=<m>``: events appended, keys compared,
feature values compared (keys x features), mismatches (must be 0).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

from flashrec.eventlog.factory import build_event_log
from flashrec.events import CatalogEvent, Rejection, StorefrontEvent
from flashrec.features import FEATURE_VIEWS
from flashrec.settings import Settings
from flashrec.simulator import SimulationConfig, simulate
from flink_jobs import job_check, job_process
from flink_jobs.job_config import JobConfig

log = logging.getLogger("bench.parity")

Event = StorefrontEvent | CatalogEvent
Features = dict[str, dict[str, dict[str, Any]]]


def bench_redis_url(redis_url: str, db: int = 12) -> str:
    """The benchmarks' own Redis database (they write feature keys; keep them apart)."""
    url = urlparse(redis_url)
    return urlunparse(url._replace(path=f"/{db}"))


def diginetica_slice(folder: Path, views: int, purchases: int) -> list[StorefrontEvent]:
    """The export's first ``views`` views and first ``purchases`` purchases (valid ones)."""
    from flashrec.loaders.csv_export import (
        DIGINETICA_FILES,
        DIGINETICA_PURCHASES,
        DIGINETICA_VIEWS,
        iter_csv,
    )

    out: list[StorefrontEvent] = []
    for name, mapping, n in (
        ("views", DIGINETICA_VIEWS, views),
        ("purchases", DIGINETICA_PURCHASES, purchases),
    ):
        rows = iter_csv(folder / DIGINETICA_FILES[name], mapping)
        valid = (e for e in rows if not isinstance(e, Rejection))
        out.extend(itertools.islice(valid, n))
    return out


# -- the Spark path ---------------------------------------------------------------------------

#: (column, Spark type name) of silver/events and silver/catalog_events that the job reads.
SILVER_EVENT_COLUMNS = (
    ("event_id", "string"), ("event_time", "timestamp"), ("event_type", "string"),
    ("item_id", "string"), ("user_id", "string"), ("session_id", "string"),
    ("price", "double"), ("quantity", "long"),
)  # fmt: skip
SILVER_CATALOG_COLUMNS = (
    ("event_id", "string"), ("event_time", "timestamp"), ("event_type", "string"),
    ("item_id", "string"), ("category", "string"), ("price", "double"),
    ("stock_level", "long"),
)  # fmt: skip


def _frame(spark: Any, events: list[Event], columns: tuple[tuple[str, str], ...]) -> Any:
    """A DataFrame of the events' fields named in ``columns`` (schema given, not inferred)."""
    from pyspark.sql import types as T

    types = {"string": T.StringType(), "timestamp": T.TimestampType(), "double": T.DoubleType()}
    schema = T.StructType(
        [T.StructField(name, types.get(kind, T.LongType())) for name, kind in columns]
    )
    rows = [tuple(getattr(e, name) for name, _ in columns) for e in events]
    return spark.createDataFrame(rows, schema)


def _view_history(sf: Any, rows: Any, view: Any, n_events: int, settings: Settings) -> Any:
    """``spark_jobs.features.view_history`` as the lake job calls it (bucketed or not)."""
    import inspect

    if "buckets" in inspect.signature(sf.view_history).parameters:
        buckets = sf.bucket_count(n_events, settings.spark_shuffle_partitions)
        return sf.view_history(rows, view, buckets)
    return sf.view_history(rows, view)


def spark_features(events: list[Event], settings: Settings) -> Features:
    """Final values per key through ``spark_jobs.features`` (the lake's own code)."""
    from pyspark.sql import types as T

    from spark_jobs import features as sf
    from spark_jobs.session import spark_session

    spark = spark_session(settings, app_name="flashrec-parity")
    storefront = [e for e in events if isinstance(e, StorefrontEvent)]
    catalog_events = [e for e in events if isinstance(e, CatalogEvent)]
    created = [e for e in catalog_events if e.event_type == "item_created"]
    categories = {e.item_id: e.category for e in created}
    # Silver-shaped inputs: the columns spark_jobs.features.feature_events reads.
    events_df = _frame(spark, storefront, SILVER_EVENT_COLUMNS)
    catalog_events_df = _frame(spark, catalog_events, SILVER_CATALOG_COLUMNS)
    catalog_df = spark.createDataFrame(
        sorted(categories.items()) or [("__none__", None)],
        T.StructType(
            [T.StructField("item_id", T.StringType()), T.StructField("category", T.StringType())]
        ),
    )
    rows = sf.feature_events(events_df, catalog_events_df, catalog_df).cache()
    out: Features = {}
    for view in FEATURE_VIEWS:
        latest: dict[str, tuple[datetime, dict[str, Any]]] = {}
        for row in _view_history(sf, rows, view, len(events), settings).collect():
            values = row.asDict()
            key, at = values.pop(view.entity), values.pop("event_timestamp")
            if key not in latest or at >= latest[key][0]:
                latest[key] = (at, values)
        out[view.name] = {key: values for key, (_, values) in latest.items()}
    rows.unpersist()
    return out


# -- the Flink path ---------------------------------------------------------------------------


def flink_features(
    lines: list[str],
    expected_keys: Features,
    settings: Settings,
    env: dict[str, str],
    work: Path,
    log_options: dict[str, Any] | None = None,
) -> Features:
    """Append ``lines`` to a fresh log, run the job bounded, read every key back.
    ``log_options``: for the event log client (the test broker's producer settings)."""
    from flink_jobs import build_java
    from flink_jobs.job_sinks import FeastWriter

    tag = uuid.uuid4().hex[:8]
    keys = {
        "stock_key": f"parity:{tag}:stock",
        "soldout_key": f"parity:{tag}:soldout",
        "catalog_key": f"parity:{tag}:catalog",
    }
    with build_event_log(settings, **(log_options or {})) as eventlog:
        eventlog.append(lines)
    jar = build_java.build(log=lambda _msg: None)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in keys.items()]
    argv = ["run", "--bounded", "drain", "--writer", "feast", "--jar", str(jar), *flags]
    started = time.monotonic()
    proc = job_process.spawn(argv, work / "job.log", env)
    rc = proc.wait(900)
    if rc != 0:
        tail = (work / "job.log").read_text(errors="replace")[-4000:]
        raise SystemExit(f"the Flink job failed ({rc}):\n{tail}")
    print(f"flink: bounded run over {len(lines)} events took {time.monotonic() - started:.1f}s")
    writer = FeastWriter(JobConfig.from_settings(settings, writer="feast", **keys))
    out: Features = {}
    for view_name, per_key in expected_keys.items():
        keys_list = sorted(per_key)
        rows = []
        for start in range(0, len(keys_list), 200):
            rows.extend(writer.read(view_name, keys_list[start : start + 200]))
        out[view_name] = {k: row for k, row in zip(keys_list, rows, strict=True)}
    return out


# -- comparison -------------------------------------------------------------------------------


def compare(paths: dict[str, Features], reference: Features) -> tuple[int, int, list[str]]:
    """Keys, values compared and the disagreements (any path differing from another)."""
    n_keys = n_values = 0
    problems: list[str] = []
    names = list(paths)
    for view in FEATURE_VIEWS:
        for key, ref_values in reference[view.name].items():
            n_keys += 1
            for feature in view.feature_names:
                n_values += 1
                got = {name: paths[name].get(view.name, {}).get(key, {}) for name in names}
                values = {name: got[name].get(feature, "<missing>") for name in names}
                values["fold"] = ref_values[feature]
                first = values["fold"]
                if not all(job_check.same(first, v) for v in values.values()):
                    problems.append(f"{view.name}[{key}].{feature}: {values}")
    return n_keys, n_values, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--sessions-per-day", type=int, default=400)
    parser.add_argument("--diginetica-events", type=int, default=3000)
    parser.add_argument("--redis-url", default=None, help="default: REDIS_URL's host, db 12")
    parser.add_argument(
        "--backend", choices=("redis", "kafka"), default=None,
        help="event log the Flink path reads (default: the setting)",
    )  # fmt: skip
    parser.add_argument(
        "--kafka-test-broker", action="store_true",
        help="run a throwaway Kafka-protocol broker (tansu, a dev dependency)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        return _run(args, stack)


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("FEAST_USAGE", "False")

    base = Settings.from_env()
    work = Path(tempfile.mkdtemp(prefix="flashrec-parity-"))
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "REDIS_URL": args.redis_url or bench_redis_url(base.redis_url),
        "FLASHREC_VAR_DIR": str(work / "var"),
        "FLASHREC_EVENTS_STREAM": f"parity:{tag}:events",
        "FLASHREC_DEADLETTER_STREAM": f"parity:{tag}:deadletter",
        "FLASHREC_RESCORE_STREAM": f"parity:{tag}:rescore",
        "FLASHREC_KAFKA_EVENTS_TOPIC": f"parity.{tag}.events",
        "FLASHREC_KAFKA_DEADLETTER_TOPIC": f"parity.{tag}.deadletter",
        "FLASHREC_FLINK_CONNECTOR_DIR": str(base.flink_connector_dir),
    }
    if args.backend:
        env["FLASHREC_EVENTLOG_BACKEND"] = args.backend
    log_options: dict[str, Any] = {}
    if args.kafka_test_broker:
        from tests.kafka_broker import TANSU_PRODUCER, kafka_broker  # dev dependency

        env["KAFKA_BOOTSTRAP_SERVERS"] = stack.enter_context(kafka_broker())
        log_options["producer_config"] = TANSU_PRODUCER
    settings = Settings.from_env(env)

    config = SimulationConfig.from_settings(
        base, n_users=args.users, n_items=args.items, days=args.days,
        sessions_per_day=args.sessions_per_day,
    )  # fmt: skip
    sim = simulate(config)
    events: list[Event] = list(sim.events)
    print(f"simulated flash sale: {len(sim.events)} events (seed {config.seed}, surge on day "
          f"{config.days}, {sim.sale.start:%H:%M}-{sim.sale.end:%H:%M} UTC)")  # fmt: skip
    dgn_dir = base.shared_data_dir / "diginetica_raw"
    if args.diginetica_events and dgn_dir.exists():
        n_purchases = args.diginetica_events // 10
        dgn = diginetica_slice(dgn_dir, args.diginetica_events - n_purchases, n_purchases)
        events += dgn
        print(f"DIGINETICA raw slice: {len(dgn)} events (first views + first purchases)")
    else:
        print(f"DIGINETICA raw export not found under {dgn_dir}: simulated data only")
    lines = [e.to_json() for e in events]

    reference = job_check.reference_features(job_check.feature_events(events))
    paths: dict[str, Features] = {}
    started = time.monotonic()
    try:
        paths["spark"] = spark_features(events, settings)
        print(f"spark: spark_jobs.features over {len(events)} events took "
              f"{time.monotonic() - started:.1f}s")  # fmt: skip
    except ImportError as exc:
        print(f"spark_jobs.features unavailable ({exc}): the batch side is the in-process fold")
    paths["flink"] = flink_features(lines, reference, settings, env, work, log_options)

    n_keys, n_values, problems = compare(paths, reference)
    for line in problems[:20]:
        print("MISMATCH", line)
    per_view = ", ".join(f"{v.name} {len(reference[v.name])}" for v in FEATURE_VIEWS)
    print(f"compared paths {' / '.join([*paths, 'fold'])}; keys per view: {per_view}; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, work dir {work}")  # fmt: skip
    print(f"flink path read the {settings.eventlog_backend} event log")
    print(f"parity events={len(events)} keys={n_keys} features={n_values} "
          f"mismatches={len(problems)}")  # fmt: skip
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
