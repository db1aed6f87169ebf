"""Bronze: raw landing lines appended as they are, with ingestion time and source.

Nothing is parsed or dropped here, so that silver can always be rebuilt from bronze.
A landing day is one idempotent batch: its key holds a content fingerprint, so
re-running the same files is a no-op and a corrected re-delivery lands as a new batch.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from flashrec.settings import Settings
from spark_jobs.delta_table import CommitResult
from spark_jobs.tables import lake_table

log = logging.getLogger("flashrec.bronze")


def landing_files(settings: Settings, source: str, day: str) -> list[Path]:
    folder = settings.landing_dir / source / f"dt={day}"
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def landing_days(settings: Settings, source: str) -> list[str]:
    """Days that have landing files, oldest first."""
    root = settings.landing_dir / source
    if not root.is_dir():
        return []
    return sorted(p.name.removeprefix("dt=") for p in root.glob("dt=*") if any(p.glob("*.jsonl")))


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def ingest_landing_day(
    spark: SparkSession, settings: Settings, day: str, source: str = "simulator"
) -> CommitResult | None:
    """Append one landing day to bronze/events; None when that day has no files."""
    files = landing_files(settings, source, day)
    if not files:
        log.info("bronze: no landing files for %s/%s", source, day)
        return None
    batch_key = f"bronze:{source}:{day}:{_fingerprint(files)}"
    table = lake_table(settings, "bronze/events")
    if table.has_batch(batch_key):
        log.info("bronze: %s already ingested", batch_key)
        return CommitResult(table.name, table.version(), 0, 0, skipped=True)
    raw = spark.read.text([str(f) for f in files]).select(
        F.col("value").alias("raw"),
        F.lit(source).alias("source"),
        F.regexp_extract(F.input_file_name(), r"([^/]+)$", 1).alias("landing_file"),
        F.current_timestamp().alias("ingested_at"),
        F.lit(day).alias("ingest_date"),
    )
    result = table.write(raw, batch_key=batch_key, metadata={"source": source, "day": day})
    log.info("bronze: %s/%s -> %d rows (version %s)", source, day, result.rows, result.version)
    return result
