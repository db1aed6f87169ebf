"""The Dagster graph loads, and materializes for real (in-process) on simulator data."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.landing import SOURCE
from flashrec.settings import Settings
from orchestration.definitions import defs
from spark_jobs.bronze import landing_days
from spark_jobs.tables import lake_table

pytestmark = pytest.mark.integration

SMALL_SIMULATION = {
    "FLASHREC_SIM_USERS": "150",
    "FLASHREC_SIM_ITEMS": "60",
    "FLASHREC_SIM_DAYS": "2",
    "FLASHREC_SIM_SESSIONS_PER_DAY": "60",
}


def test_definitions_load_with_the_whole_lineage():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "simulated_landing_files",
        "bronze_events",
        "silver_events",
        "silver_rejected_events",
        "gold_catalog",
        "gold_interactions",
    } <= keys
    upstream = {k.to_user_string() for k in graph.get(dg.AssetKey("gold_catalog")).parent_keys}
    assert upstream == {"silver_events", "silver_catalog_events"}
    assert defs.resolve_job_def("lake_daily").partitions_def is not None


@pytest.fixture(scope="module")
def materialized(spark, tmp_path_factory):
    """Materialize landing -> bronze -> silver -> gold into a temporary instance."""
    patch = pytest.MonkeyPatch()
    var_dir = tmp_path_factory.mktemp("dagster-var")
    for key, value in SMALL_SIMULATION.items():
        patch.setenv(key, value)
    patch.setenv("FLASHREC_VAR_DIR", str(var_dir))
    from orchestration.demo import materialize_lake

    settings = Settings.from_env()
    instance = dg.DagsterInstance.ephemeral()
    days = materialize_lake(instance, settings)
    yield settings, instance, days
    patch.undo()


def test_materializations_carry_counts_versions_and_checks(materialized):
    settings, instance, days = materialized
    assert days == landing_days(settings, SOURCE) and len(days) >= 2
    for key in ("bronze_events", "silver_events", "gold_catalog", "gold_interactions"):
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert event is not None, key
        metadata = event.asset_materialization.metadata
        assert metadata["dagster/row_count"].value > 0
        assert "delta_version" in metadata and "preview" in metadata
    records = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION),
        ascending=True,  # later evaluations overwrite earlier ones below
    )
    outcomes = [r.event_log_entry.dagster_event.event_specific_data for r in records]
    evaluations = {o.check_name: o.passed for o in outcomes}
    assert {
        "silver_events_unique_event_id",
        "silver_counts_add_up",
        "gold_catalog_stock_never_negative",
        "bronze_has_rows",
    } <= set(evaluations)
    failed = sorted(name for name, ok in evaluations.items() if not ok)
    assert not failed, failed


def test_the_lake_accounts_for_every_simulated_line(materialized):
    settings, _, _ = materialized
    bronze = lake_table(settings, "bronze/events").count()
    accepted = lake_table(settings, "silver/events").count()
    catalog = lake_table(settings, "silver/catalog_events").count()
    rejected = lake_table(settings, "silver/rejected_events").count()
    assert bronze == accepted + catalog + rejected
    assert rejected > 0  # the simulator injects malformed, duplicated and late lines
    landing_lines = sum(
        sum(1 for _ in path.open()) for path in (settings.landing_dir / SOURCE).rglob("*.jsonl")
    )
    assert bronze == landing_lines
