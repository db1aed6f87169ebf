"""Bronze: raw landing lines appended as they are, with ingestion time and source.

Nothing is parsed or dropped here, so that silver can always be rebuilt from bronze.
Two kinds of landing source (``flashrec.lake_layout``):

- a day of history files (``simulator``, exports): one idempotent batch per day whose key
  holds a content fingerprint, so re-running the same files is a no-op and a corrected
  re-delivery lands as a new batch;
- the live stream (``live``): files keep arriving all day, each complete and immutable
  once visible. Every run appends the day's files that bronze does not hold yet (found by
  the ``landing_file`` column of that day's bronze rows), so each file lands exactly once
  however often the refresh runs, and a run that dies after its commit is a no-op again.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from flashrec.lake_layout import LIVE_SOURCE, days_with_files, finished_files
from flashrec.settings import Settings
from spark_jobs.delta_table import CommitResult
from spark_jobs.tables import lake_table

log = logging.getLogger("flashrec.bronze")


def landing_files(settings: Settings, source: str, day: str) -> list[Path]:
    return finished_files(settings.landing_dir, source, day)


def landing_days(settings: Settings, source: str) -> list[str]:
    """Days that have landing files, oldest first."""
    return days_with_files(settings.landing_dir, source)


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _append(
    spark: SparkSession,
    settings: Settings,
    files: list[Path],
    source: str,
    day: str,
    batch_key: str,
) -> CommitResult:
    raw = spark.read.text([str(f) for f in files]).select(
        F.col("value").alias("raw"),
        F.lit(source).alias("source"),
        F.regexp_extract(F.input_file_name(), r"([^/]+)$", 1).alias("landing_file"),
        F.current_timestamp().alias("ingested_at"),
        F.lit(day).alias("ingest_date"),
    )
    table = lake_table(settings, "bronze/events")
    result = table.write(raw, batch_key=batch_key, metadata={"source": source, "day": day})
    log.info("bronze: %s/%s -> %d rows (version %s)", source, day, result.rows, result.version)
    return result


def ingest_landing_day(
    spark: SparkSession, settings: Settings, day: str, source: str = "simulator"
) -> CommitResult | None:
    """Append one landing day to bronze/events; None when that day has no files."""
    if source == LIVE_SOURCE:
        return ingest_live_day(spark, settings, day)
    files = landing_files(settings, source, day)
    if not files:
        log.info("bronze: no landing files for %s/%s", source, day)
        return None
    batch_key = f"bronze:{source}:{day}:{_fingerprint(files)}"
    table = lake_table(settings, "bronze/events")
    if table.has_batch(batch_key):
        log.info("bronze: %s already ingested", batch_key)
        return CommitResult(table.name, table.version(), 0, 0, skipped=True)
    return _append(spark, settings, files, source, day, batch_key)


def ingested_files(settings: Settings, source: str, day: str) -> set[str]:
    """Names of the landing files of ``source`` whose rows bronze already holds for ``day``."""
    table = lake_table(settings, "bronze/events")
    if not table.exists():
        return set()
    rows = table.delta().to_pyarrow_table(
        columns=["landing_file"],
        filters=[("ingest_date", "=", day), ("source", "=", source)],
    )
    return set(rows.column("landing_file").unique().to_pylist())


def ingest_live_day(spark: SparkSession, settings: Settings, day: str) -> CommitResult | None:
    """Append the live files of ``day`` that bronze does not hold yet; None if none."""
    files = landing_files(settings, LIVE_SOURCE, day)
    done = ingested_files(settings, LIVE_SOURCE, day)
    new = [f for f in files if f.name not in done]
    if not new:
        log.info("bronze: no new live files for %s (%d already in)", day, len(done))
        return None
    names = hashlib.sha256("\n".join(f.name for f in new).encode()).hexdigest()[:16]
    return _append(spark, settings, new, LIVE_SOURCE, day, f"bronze:{LIVE_SOURCE}:{day}:{names}")
