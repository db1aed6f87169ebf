"""Gold: per-user and per-item aggregates, the catalog snapshot, training interactions.

Each gold table is a full rebuild from one silver snapshot pair, committed as an
overwrite. The batch key names the silver versions it was built from, so re-running
on unchanged silver is skipped and every gold version says which silver it reflects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from flashrec.settings import Settings
from spark_jobs.delta_table import CommitResult
from spark_jobs.tables import lake_table

log = logging.getLogger("flashrec.gold")

#: How much each action says about interest; used by the interaction table.
EVENT_WEIGHTS = {
    "view": 1.0,
    "click": 2.0,
    "add_to_cart": 4.0,
    "remove_from_cart": -2.0,
    "purchase": 8.0,
}


@dataclass(frozen=True)
class GoldInputs:
    events: DataFrame
    catalog_events: DataFrame
    batch_key: str


def gold_inputs(spark: SparkSession, settings: Settings) -> GoldInputs:
    events_t = lake_table(settings, "silver/events")
    catalog_t = lake_table(settings, "silver/catalog_events")
    key = f"gold:events@{events_t.version()}:catalog@{catalog_t.version()}"
    return GoldInputs(events_t.read(spark), catalog_t.read(spark), key)


def _latest_non_null(column: str) -> F.Column:
    """Value of ``column`` at the latest event where it is set."""
    order = F.when(F.col(column).isNotNull(), F.struct("event_time", "event_id"))
    return F.max_by(F.col(column), order).alias(column)


def catalog_snapshot(catalog_events: DataFrame) -> DataFrame:
    """Current state of every item: attributes, price and stock after the last change."""
    created = catalog_events.filter(F.col("event_type") == "item_created")
    first_seen = created.groupBy("item_id").agg(F.min("event_time").alias("created_at"))
    state = catalog_events.groupBy("item_id").agg(
        _latest_non_null("category"),
        _latest_non_null("brand"),
        _latest_non_null("price"),
        _latest_non_null("stock_level"),
        F.max("event_time").alias("updated_at"),
        F.sum(F.when(F.col("event_type") == "price_change", 1).otherwise(0)).alias("price_changes"),
    )
    return (
        state.join(first_seen, "item_id", "left")
        .withColumn("is_sold_out", F.coalesce(F.col("stock_level") == 0, F.lit(False)))
        .select(
            "item_id",
            "category",
            "brand",
            "price",
            "stock_level",
            "is_sold_out",
            "created_at",
            "updated_at",
            "price_changes",
        )
    )


def _counts(prefix: str = "") -> list[F.Column]:
    et = F.col("event_type")
    return [
        F.count("*").alias(f"{prefix}events"),
        F.sum((et == "view").cast("long")).alias(f"{prefix}views"),
        F.sum((et == "click").cast("long")).alias(f"{prefix}clicks"),
        F.sum((et == "add_to_cart").cast("long")).alias(f"{prefix}carts"),
        F.sum((et == "remove_from_cart").cast("long")).alias(f"{prefix}cart_removals"),
        F.sum((et == "purchase").cast("long")).alias(f"{prefix}purchases"),
        F.sum(F.when(et == "purchase", F.col("quantity")).otherwise(0)).alias(f"{prefix}units"),
        F.round(
            F.sum(F.when(et == "purchase", F.col("price") * F.col("quantity")).otherwise(0.0)), 2
        ).alias(f"{prefix}revenue"),
    ]


def item_stats(events: DataFrame) -> DataFrame:
    return (
        events.groupBy("item_id")
        .agg(
            *_counts(),
            F.countDistinct("user_id").alias("unique_users"),
            F.countDistinct("session_id").alias("unique_sessions"),
            F.min("event_time").alias("first_event_time"),
            F.max("event_time").alias("last_event_time"),
        )
        .withColumn(
            "view_to_purchase",
            F.when(F.col("views") > 0, F.col("purchases") / F.col("views")).otherwise(0.0),
        )
    )


def user_stats(events: DataFrame, catalog: DataFrame) -> DataFrame:
    """Known shoppers only: anonymous sessions have no user to describe."""
    known = events.filter(F.col("user_id").isNotNull())
    base = known.groupBy("user_id").agg(
        *_counts(),
        F.countDistinct("session_id").alias("sessions"),
        F.countDistinct("item_id").alias("distinct_items"),
        F.min("event_time").alias("first_seen"),
        F.max("event_time").alias("last_seen"),
        F.mode("device").alias("main_device"),
    )
    favourite = (
        known.join(catalog.select("item_id", "category"), "item_id", "left")
        .filter(F.col("category").isNotNull())
        .groupBy("user_id")
        .agg(F.mode("category").alias("favourite_category"))
    )
    return base.join(favourite, "user_id", "left")


def interactions(events: DataFrame, catalog: DataFrame) -> DataFrame:
    """One row per shopper action with item attributes: what training reads."""
    weights = F.create_map(*[F.lit(x) for kv in EVENT_WEIGHTS.items() for x in kv])
    return events.join(catalog.select("item_id", "category", "brand"), "item_id", "left").select(
        "event_id",
        "event_time",
        "event_date",
        "user_id",
        "session_id",
        "visit_id",
        "event_seq",
        "item_id",
        "event_type",
        weights[F.col("event_type")].alias("weight"),
        "price",
        "quantity",
        "category",
        "brand",
        "device",
        "referrer",
    )


@dataclass(frozen=True)
class GoldResult:
    results: dict[str, CommitResult]

    @property
    def skipped(self) -> bool:
        return all(r.skipped for r in self.results.values())


def build_gold(spark: SparkSession, settings: Settings) -> GoldResult:
    """Rebuild every gold table from the current silver snapshots."""
    inputs = gold_inputs(spark, settings)
    catalog = catalog_snapshot(inputs.catalog_events).cache()
    outputs = {
        "gold/catalog": catalog,
        "gold/item_stats": item_stats(inputs.events),
        "gold/user_stats": user_stats(inputs.events, catalog),
        "gold/interactions": interactions(inputs.events, catalog),
    }
    results = {}
    for name, df in outputs.items():
        results[name] = lake_table(settings, name).write(
            df, mode="overwrite", batch_key=inputs.batch_key, metadata={"inputs": inputs.batch_key}
        )
        log.info("%s: %d rows (version %s)", name, results[name].rows, results[name].version)
    catalog.unpersist()
    return GoldResult(results)
