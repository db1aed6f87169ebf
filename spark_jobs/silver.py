"""Silver: validated, deduplicated, sessionized events for one event day.

Who decides each bronze row, so that every row has exactly one outcome
(in = accepted + rejected):
- a valid row with event day E, ingested at most ``allowed_lateness_days`` after E, is
  decided by the run for day E (accepted, or rejected as a duplicate event_id);
- every other row (unparseable, invalid, future-dated, or later than allowed) is
  rejected by the run for the day it was ingested.
The run for day D therefore reads bronze days D-1 .. D+lateness (D-1 covers clock skew
around midnight). Sessions are cut at midnight UTC, as most analytics tools do.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from flashrec.settings import Settings
from spark_jobs.delta_table import DeltaLakeTable
from spark_jobs.parse import PARSED_FIELDS, parse_batches
from spark_jobs.schema import to_arrow_schema, to_spark_schema
from spark_jobs.tables import lake_table

log = logging.getLogger("flashrec.silver")

STOREFRONT_COLUMNS = [
    "event_id",
    "event_time",
    "event_type",
    "user_id",
    "session_id",
    "item_id",
    "price",
    "quantity",
    "device",
    "referrer",
    "schema_version",
    "source",
    "ingest_date",
    "ingested_at",
]
CATALOG_COLUMNS = [
    "event_id",
    "event_time",
    "event_type",
    "item_id",
    "category",
    "brand",
    "price",
    "stock_level",
    "schema_version",
    "source",
    "ingest_date",
    "ingested_at",
]
REJECTED_COLUMNS = [
    "raw",
    "reason",
    "reject_field",
    "event_id",
    "source",
    "landing_file",
    "ingest_date",
    "ingested_at",
]


@dataclass(frozen=True)
class SilverResult:
    """Counts of one run: ``rows_in == accepted + catalog + rejected`` always holds."""

    day: str
    rows_in: int
    accepted: int
    catalog: int
    rejected: int
    duplicates: int
    late_accepted: int
    versions: dict[str, int | None]
    skipped: bool


def _days_around(day: str, before: int, after: int) -> list[str]:
    d = date.fromisoformat(day)
    return [(d + timedelta(days=k)).isoformat() for k in range(-before, after + 1)]


def parsed_bronze(spark: SparkSession, settings: Settings, days: list[str]) -> DataFrame:
    """Bronze rows of these ingest days with the event model's verdict on each."""
    bronze = lake_table(settings, "bronze/events")
    df = bronze.read(spark, partitions={"ingest_date": days})
    out_schema = pa.schema(list(to_arrow_schema(df.schema)) + PARSED_FIELDS)
    body = partial(
        parse_batches,
        max_future_skew_s=settings.max_future_skew_s,
        max_bytes=settings.max_event_bytes,
    )
    return df.mapInArrow(body, to_spark_schema(out_schema))


def sessionize(events: DataFrame, gap_minutes: int) -> DataFrame:
    """Order each session, and split it into visits at gaps longer than ``gap_minutes``."""
    by_session = Window.partitionBy("session_id").orderBy("event_time", "event_id")
    gap_s = F.col("event_time").cast("long") - F.lag("event_time").over(by_session).cast("long")
    return (
        events.withColumn("event_seq", F.row_number().over(by_session))
        .withColumn("secs_since_prev", gap_s)
        .withColumn(
            "visit_index",
            F.sum(
                F.when(
                    F.col("secs_since_prev").isNull()
                    | (F.col("secs_since_prev") > gap_minutes * 60),
                    1,
                ).otherwise(0)
            ).over(by_session.rowsBetween(Window.unboundedPreceding, Window.currentRow)),
        )
        .withColumn("visit_id", F.concat_ws("#", "session_id", F.col("visit_index").cast("string")))
        .withColumn("session_start", F.min("event_time").over(Window.partitionBy("session_id")))
    )


def _input_key(tables: DeltaLakeTable, days: list[str], settings: Settings) -> str:
    files = tables.files(partitions={"ingest_date": days})
    digest = hashlib.sha256("\n".join(files).encode())
    digest.update(f"{settings.allowed_lateness_days}:{settings.max_future_skew_s}".encode())
    return digest.hexdigest()[:16]


def build_silver_day(spark: SparkSession, settings: Settings, day: str) -> SilverResult:
    """Rebuild the silver partitions owned by ``day`` (idempotent: replaces them)."""
    lateness = settings.allowed_lateness_days
    days = _days_around(day, 1, lateness)
    bronze = lake_table(settings, "bronze/events")
    events_t = lake_table(settings, "silver/events")
    catalog_t = lake_table(settings, "silver/catalog_events")
    rejected_t = lake_table(settings, "silver/rejected_events")
    batch_key = f"silver:{day}:{_input_key(bronze, days, settings)}"
    if all(t.has_batch(batch_key) for t in (events_t, catalog_t, rejected_t)):
        log.info("silver %s: inputs unchanged since last run, skipping", day)
        return SilverResult(day, 0, 0, 0, 0, 0, 0, {}, skipped=True)

    parsed = parsed_bronze(spark, settings, days).cache()
    days_late = F.datediff(F.to_date("ingest_date"), F.to_date("event_date"))
    owned_valid = parsed.filter(
        F.col("ok") & (F.col("event_date") == day) & (days_late <= lateness)
    )
    owned_invalid = (
        parsed.filter((F.col("ingest_date") == day) & (~F.col("ok") | (days_late > lateness)))
        .withColumn(
            "reason",
            F.when(
                F.col("ok"),
                F.concat(
                    F.lit("event_time: arrived "),
                    days_late.cast("string"),
                    F.lit(f" days after its event day (allowed lateness {lateness} days)"),
                ),
            ).otherwise(F.col("reason")),
        )
        .withColumn(
            "reject_field",
            F.when(F.col("ok"), F.lit("event_time")).otherwise(F.col("reject_field")),
        )
    )

    first = Window.partitionBy("event_id").orderBy("ingest_date", "landing_file", "raw")
    ranked = owned_valid.withColumn("copy", F.row_number().over(first)).cache()
    winners = ranked.filter(F.col("copy") == 1)
    duplicates = (
        ranked.filter(F.col("copy") > 1)
        .withColumn("reason", F.lit("event_id: duplicate of an event already accepted"))
        .withColumn("reject_field", F.lit("event_id"))
    )

    storefront = (
        sessionize(
            winners.filter(F.col("event_kind") == "storefront").select(*STOREFRONT_COLUMNS),
            settings.session_gap_minutes,
        )
        .withColumn("is_late", F.col("ingest_date") > F.lit(day))
        .withColumn("event_date", F.lit(day))
    )
    catalog = (
        winners.filter(F.col("event_kind") == "catalog")
        .select(*CATALOG_COLUMNS)
        .withColumn("event_date", F.lit(day))
    )
    rejected = (
        owned_invalid.select(*REJECTED_COLUMNS)
        .unionByName(duplicates.select(*REJECTED_COLUMNS))
        .withColumn("decided_date", F.lit(day))
    )

    meta = {"day": day, "inputs": ",".join(days)}
    # Each table replaces only the one partition this run owns (see the module docstring).
    r_events, r_catalog, r_rejected = (
        table.write(
            df,
            mode="overwrite",
            replace_partitions={table.partition_by[0]: day},
            batch_key=batch_key,
            metadata=meta,
        )
        for table, df in ((events_t, storefront), (catalog_t, catalog), (rejected_t, rejected))
    )
    n_dup = duplicates.count()
    n_late = storefront.filter("is_late").count()
    rows_in = owned_valid.count() + owned_invalid.count()
    parsed.unpersist()
    ranked.unpersist()
    result = SilverResult(
        day=day,
        rows_in=rows_in,
        accepted=r_events.rows,
        catalog=r_catalog.rows,
        rejected=r_rejected.rows,
        duplicates=n_dup,
        late_accepted=n_late,
        versions={t.table: t.version for t in (r_events, r_catalog, r_rejected)},
        skipped=False,
    )
    log.info(
        "silver %s: in=%d accepted=%d catalog=%d rejected=%d (duplicates=%d) late_accepted=%d",
        day,
        result.rows_in,
        result.accepted,
        result.catalog,
        result.rejected,
        n_dup,
        n_late,
    )
    return result
