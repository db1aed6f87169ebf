"""Asset checks for the lake: row counts, keys, duplicates, accounting, freshness."""

from datetime import timedelta

import dagster as dg

from assets import quality
from assets.lake import bronze_events, gold_tables, silver_tables
from assets.partitions import daily
from assets.resources import LakeResource


def _result(verdict: quality.Verdict, **kwargs) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=verdict.passed, metadata=verdict.metadata, **kwargs)


@dg.asset_check(asset=bronze_events, partitions_def=daily, blocking=True)
def bronze_has_rows(lake: LakeResource) -> dg.AssetCheckResult:
    """Bronze must hold data once a landing day was ingested."""
    return _result(quality.not_empty(lake.table("bronze/events")))


@dg.asset_check(asset="silver_events", partitions_def=daily, blocking=True)
def silver_events_keys_not_null(lake: LakeResource) -> dg.AssetCheckResult:
    return _result(
        quality.no_null_keys(lake.table("silver/events"), ["event_id", "item_id", "session_id"])
    )


@dg.asset_check(asset="silver_events", partitions_def=daily, blocking=True)
def silver_events_unique_event_id(lake: LakeResource) -> dg.AssetCheckResult:
    """Dedupe must hold across days: an event id appears once in the whole table."""
    return _result(quality.unique_key(lake.table("silver/events"), "event_id"))


@dg.asset_check(asset="silver_rejected_events", partitions_def=daily)
def silver_counts_add_up(lake: LakeResource) -> dg.AssetCheckResult:
    """in = accepted + rejected; warns while some bronze days await their silver run."""
    verdict = quality.counts_add_up(
        lake.table("bronze/events"),
        [
            lake.table(t)
            for t in ("silver/events", "silver/catalog_events", "silver/rejected_events")
        ],
    )
    return _result(verdict, severity=dg.AssetCheckSeverity.WARN)


@dg.asset_check(asset="gold_catalog", blocking=True)
def gold_catalog_stock_never_negative(lake: LakeResource) -> dg.AssetCheckResult:
    return _result(quality.non_negative(lake.table("gold/catalog"), "stock_level"))


@dg.asset_check(asset="gold_catalog", blocking=True)
def gold_catalog_one_row_per_item(lake: LakeResource) -> dg.AssetCheckResult:
    return _result(quality.unique_key(lake.table("gold/catalog"), "item_id"))


@dg.asset_check(asset="gold_item_stats")
def gold_item_stats_one_row_per_item(lake: LakeResource) -> dg.AssetCheckResult:
    return _result(quality.unique_key(lake.table("gold/item_stats"), "item_id"))


@dg.asset_check(asset="gold_interactions", blocking=True)
def gold_interactions_keys_not_null(lake: LakeResource) -> dg.AssetCheckResult:
    return _result(
        quality.no_null_keys(lake.table("gold/interactions"), ["event_id", "item_id", "session_id"])
    )


LAKE_CHECKS = [
    bronze_has_rows,
    silver_events_keys_not_null,
    silver_events_unique_event_id,
    silver_counts_add_up,
    gold_catalog_stock_never_negative,
    gold_catalog_one_row_per_item,
    gold_item_stats_one_row_per_item,
    gold_interactions_keys_not_null,
]

#: The lake is refreshed at least daily; warn when a table has not been for 26 hours.
FRESHNESS_CHECKS = dg.build_last_update_freshness_checks(
    assets=[silver_tables, gold_tables], lower_bound_delta=timedelta(hours=26)
)
