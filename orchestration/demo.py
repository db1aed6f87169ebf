"""`make demo`: the platform end to end on embedded defaults.

Materializes the lake, the features (Spark + Feast) and the model chain on the simulator's
data, then starts the serving stack (model service, read API, Flink job, scorer, gateway),
sends a short simulated flash sale through the gateway, asks for recommendations and
prints a summary and where to look.

Runs are recorded in the Dagster instance at $DAGSTER_HOME (var/dagster), so that
`dagster dev` afterwards shows every materialization, check and its metadata.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import dagster as dg

from assets.landing import SOURCE
from flashrec.settings import Settings
from orchestration import platform_demo
from orchestration.definitions import defs
from spark_jobs.bronze import landing_days
from spark_jobs.tables import TABLES, lake_table

log = logging.getLogger("flashrec.demo")


def _run(
    instance: dg.DagsterInstance, selection: str | list[str], partition_key: str | None = None
) -> None:
    job = defs.resolve_implicit_global_asset_job_def()
    started = time.monotonic()
    result = job.execute_in_process(
        instance=instance,
        asset_selection=list(selection_of(selection).resolve(defs.resolve_asset_graph())),
        partition_key=partition_key,
        tags={"flashrec/trigger": "demo"},
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )
    if not result.success:
        raise RuntimeError(f"materializing {selection} {partition_key or ''} failed")
    log.info(
        "materialized %s %s in %.1fs", selection, partition_key or "", time.monotonic() - started
    )


FEATURES = [
    "features_item_activity",
    "features_session_activity",
    "features_user_activity",
    "feast_registry",
    "online_features",
]
MODELS = [
    "model_training_set",
    "sequence_model",
    "ranker_study",
    "item_embeddings",
    "faiss_index",
    "ranker",
    "model_evaluation",
    "deployed_model",
    "registered_model",
]


def selection_of(selection: str | list[str]) -> dg.AssetSelection:
    """A list of asset keys, or one selection string ("group:gold", "bronze_events")."""
    if isinstance(selection, list):
        return dg.AssetSelection.assets(*selection)
    return dg.AssetSelection.from_coercible(selection)


def materialize_lake(instance: dg.DagsterInstance, settings: Settings) -> list[str]:
    """Landing -> bronze (per day) -> silver (per day) -> gold; returns the days done."""
    _run(instance, "group:landing")
    days = landing_days(settings, SOURCE)
    log.info("landing days: %s", ", ".join(days))
    for day in days:
        _run(instance, "bronze_events", day)
    for day in days:
        _run(instance, "group:silver", day)
    _run(instance, "group:gold")
    return days


def summary(settings: Settings, days: Sequence[str]) -> str:
    lines = [f"Lake at {settings.lake_dir} (days {days[0]} .. {days[-1]}):"]
    for name in TABLES:
        table = lake_table(settings, name)
        lines.append(
            f"  {name:<24} {table.count():>9,} rows  version {table.version()}  {table.path}"
        )
    bronze = lake_table(settings, "bronze/events").count()
    outcomes = sum(
        lake_table(settings, n).count()
        for n in ("silver/events", "silver/catalog_events", "silver/rejected_events")
    )
    lines.append(
        f"  counts: bronze in={bronze:,} = accepted+rejected={outcomes:,} "
        f"({'OK' if bronze == outcomes else 'MISMATCH'})"
    )
    lines += [
        "Explore: `make up` keeps the stack running (`make down` stops it):",
        f"  Dagster UI       http://127.0.0.1:{settings.dagster_port}  "
        f"(DAGSTER_HOME={settings.dagster_home})",
        f"  read API         http://127.0.0.1:{settings.read_api_port}/recommendations?user_id=U"
        "  (schema /openapi/read.json)",
        f"  admin surface    http://127.0.0.1:{settings.read_api_admin_port}/metrics, /ab/stats"
        f"  (gateway: :{settings.gateway_admin_port}/metrics)",
        f"  event gateway    http://127.0.0.1:{settings.gateway_port}/events (POST)",
        f"  model service    http://127.0.0.1:{settings.model_service_port}",
    ]
    return "\n".join(lines)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    started = time.monotonic()
    instance = dg.DagsterInstance.get()
    days = materialize_lake(instance, settings)
    _run(instance, FEATURES)  # the Feast training set is left to the UI: minutes on 2 cores
    _run(instance, MODELS)
    print(summary(settings, days))
    print(platform_demo.run(settings))
    print(f"demo finished in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
