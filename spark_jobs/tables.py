"""Names, folders and partitioning of every lake table, in one place."""

from __future__ import annotations

from flashrec.settings import Settings
from spark_jobs.delta_table import DeltaLakeTable

# name -> partition columns
TABLES: dict[str, tuple[str, ...]] = {
    "bronze/events": ("ingest_date",),
    "silver/events": ("event_date",),
    "silver/catalog_events": ("event_date",),
    "silver/rejected_events": ("decided_date",),
    "gold/user_stats": (),
    "gold/item_stats": (),
    "gold/catalog": (),
    "gold/interactions": ("event_date",),
    # Feature history (spark_jobs/features.py) and the Feast training set (feature_repo).
    "gold/features_user_activity": (),
    "gold/features_session_activity": (),
    "gold/features_item_activity": (),
    "gold/training_ranker_v1": (),
}


def lake_table(settings: Settings, name: str) -> DeltaLakeTable:
    if name not in TABLES:
        raise KeyError(f"unknown lake table {name!r}; known: {sorted(TABLES)}")
    return DeltaLakeTable(
        settings.table_path(name), partition_by=TABLES[name], writer=settings.lake_writer
    )
