"""Bronze, silver and gold Delta tables as assets (the Spark jobs do the work)."""

import dagster as dg

from assets import groups
from assets.compute import k8s_op_tags
from assets.landing import simulated_landing_files
from assets.metadata import table_metadata
from assets.partitions import daily, silver_reads_bronze
from assets.resources import LakeResource, SparkResource
from flashrec.lake_layout import SOURCES
from spark_jobs.bronze import ingest_landing_day
from spark_jobs.gold import build_gold
from spark_jobs.silver import build_silver_day

SILVER_TABLES = {
    "silver_events": "silver/events",
    "silver_catalog_events": "silver/catalog_events",
    "silver_rejected_events": "silver/rejected_events",
}
GOLD_TABLES = {
    "gold_catalog": "gold/catalog",
    "gold_item_stats": "gold/item_stats",
    "gold_user_stats": "gold/user_stats",
    "gold_interactions": "gold/interactions",
}


@dg.asset(
    partitions_def=daily,
    deps=[simulated_landing_files],
    group_name=groups.BRONZE,
    kinds={"spark", "delta"},
    op_tags=k8s_op_tags("spark"),
)
def bronze_events(
    context: dg.AssetExecutionContext, lake: LakeResource, spark: SparkResource
) -> dg.MaterializeResult:
    """Raw landing lines of one day, appended with ingestion time and source: the day's
    history files (simulator, exports) and the live stream's files not ingested yet."""
    settings = lake.settings()
    day = context.partition_key
    session = spark.session(settings)
    appended: dict[str, int] = {}
    skipped = False
    for source in SOURCES:
        result = ingest_landing_day(session, settings, day, source=source)
        appended[source] = result.rows if result else 0
        skipped = skipped or bool(result and result.skipped)
    table = lake.table("bronze/events")
    partition_rows = (
        table.read(session, partitions={"ingest_date": [day]}).count() if table.exists() else 0
    )
    return dg.MaterializeResult(
        metadata=table_metadata(
            table,
            partition_rows=partition_rows,
            rows_appended=sum(appended.values()),
            **{f"rows_appended_{source}": n for source, n in appended.items()},
            skipped_as_duplicate_batch=skipped,
        )
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key,
            deps=[dg.AssetDep(bronze_events, partition_mapping=silver_reads_bronze)],
            group_name=groups.SILVER,
            kinds={"spark", "delta"},
            description=f"Delta table {table} (one partition per event day).",
        )
        for key, table in SILVER_TABLES.items()
    ],
    partitions_def=daily,
    can_subset=False,
    op_tags=k8s_op_tags("spark"),
)
def silver_tables(context: dg.AssetExecutionContext, lake: LakeResource, spark: SparkResource):
    """Validated, deduplicated, sessionized events of one event day, and the rejected rows."""
    settings = lake.settings()
    day = context.partition_key
    result = build_silver_day(spark.session(settings), settings, day)
    counts = {
        "rows_in": result.rows_in,
        "accepted": result.accepted,
        "catalog": result.catalog,
        "rejected": result.rejected,
        "duplicates": result.duplicates,
        "late_accepted": result.late_accepted,
        "skipped_unchanged_inputs": result.skipped,
    }
    context.log.info("silver %s: %s", day, counts)
    for key, table in SILVER_TABLES.items():
        yield dg.MaterializeResult(
            asset_key=key, metadata=table_metadata(lake.table(table), **counts)
        )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key,
            deps=["silver_events", "silver_catalog_events"],
            group_name=groups.GOLD,
            kinds={"spark", "delta"},
            description=f"Delta table {table}, rebuilt from the current silver snapshot.",
        )
        for key, table in GOLD_TABLES.items()
    ],
    can_subset=False,
    op_tags=k8s_op_tags("spark"),
)
def gold_tables(context: dg.AssetExecutionContext, lake: LakeResource, spark: SparkResource):
    """Per-user and per-item aggregates, catalog snapshot and training interactions."""
    settings = lake.settings()
    result = build_gold(spark.session(settings), settings)
    for key, table in GOLD_TABLES.items():
        commit = result.results[table]
        yield dg.MaterializeResult(
            asset_key=key,
            metadata=table_metadata(lake.table(table), skipped_unchanged_inputs=commit.skipped),
        )
