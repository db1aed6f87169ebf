"""Feature history tables, the Feast registry, online values and the ranker's training set.

Thin: Spark work is spark_jobs.features, Feast work is feature_repo.{store,offline}.
Group ``features`` is separate from ``gold`` so the lake's gold job and the demo's
``group:gold`` selection stay as fast as before.
"""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.compute import k8s_op_tags
from assets.metadata import table_metadata
from assets.resources import LakeResource, SparkResource
from flashrec.features import FEATURE_VIEWS, FeatureView
from spark_jobs.delta_table import DeltaLakeTable
from spark_jobs.features import build_feature_tables, feature_table

FEATURES_GROUP = "features"
#: asset key -> shared feature view
FEATURE_TABLE_ASSETS = {f"features_{view.name}": view for view in FEATURE_VIEWS}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key,
            deps=["silver_events", "silver_catalog_events", "gold_catalog"],
            group_name=FEATURES_GROUP,
            kinds={"spark", "delta"},
            description=f"Delta table gold/features_{view.name}: {view.description} "
            "One row per key and event instant (values as of event_timestamp).",
        )
        for key, view in FEATURE_TABLE_ASSETS.items()
    ],
    can_subset=False,
    op_tags=k8s_op_tags("spark"),
)
def feature_tables(context: dg.AssetExecutionContext, lake: LakeResource, spark: SparkResource):
    """The shared feature views folded over all silver history (Feast's offline source)."""
    settings = lake.settings()
    result = build_feature_tables(spark.session(settings), settings)
    context.log.info("feature tables %s (skipped=%s)", result.batch_key, result.skipped)
    for key, view in FEATURE_TABLE_ASSETS.items():
        yield dg.MaterializeResult(
            asset_key=key,
            metadata=table_metadata(
                feature_table(settings, view),
                skipped_unchanged_inputs=result.results[view.name].skipped,
                inputs=result.batch_key,
            ),
        )


@dg.asset(group_name=FEATURES_GROUP, kinds={"feast"}, op_tags=k8s_op_tags("light"))
def feast_registry(lake: LakeResource) -> dg.MaterializeResult:
    """`feast apply` of feature_repo.definitions into the registry under var/feast."""
    from feature_repo.store import apply_definitions, feature_store

    store = feature_store(lake.settings())
    apply_definitions(store)
    return dg.MaterializeResult(
        metadata={
            "registry": dg.MetadataValue.path(str(store.config.registry.path)),
            "feature_views": [v.name for v in store.list_feature_views()],
            "feature_services": [s.name for s in store.list_feature_services()],
        }
    )


@dg.asset(
    deps=[feast_registry, *FEATURE_TABLE_ASSETS],
    group_name=FEATURES_GROUP,
    kinds={"feast", "redis"},
    op_tags=k8s_op_tags("light"),
)
def online_features(lake: LakeResource) -> dg.MaterializeResult:
    """Latest value of every key loaded into Redis (the stream job keeps them fresh)."""
    from feature_repo.offline import materialize_latest
    from feature_repo.store import feature_store

    report = materialize_latest(feature_store(lake.settings()))
    return dg.MaterializeResult(
        metadata={"end": report.end.isoformat(), "seconds": round(report.seconds, 2)}
    )


@dg.asset(
    deps=[feast_registry, "gold_interactions", *FEATURE_TABLE_ASSETS],
    group_name=FEATURES_GROUP,
    kinds={"feast", "duckdb", "delta"},
    op_tags=k8s_op_tags("training"),
)
def ranker_training_set(lake: LakeResource) -> dg.MaterializeResult:
    """Point-in-time ranker features (ranker_v1) for every interaction, as of just before it."""
    from feature_repo.offline import TRAINING_TABLE, build_training_set
    from feature_repo.store import feature_store

    settings = lake.settings()
    report = build_training_set(feature_store(settings), settings)
    worst = max(report.null_share.items(), key=lambda kv: kv[1], default=("", 0.0))
    return dg.MaterializeResult(
        metadata=table_metadata(
            DeltaLakeTable(settings.table_path(TRAINING_TABLE)),
            rows=report.rows,
            join_seconds=round(report.seconds, 2),
            null_share=dg.MetadataValue.json(report.null_share),
            max_null_share=dg.MetadataValue.text(f"{worst[0]}: {worst[1]:.1%}"),
        )
    )


def _duplicate_instants(table: DeltaLakeTable, key: str) -> int:
    data: pa.Table = table.delta().to_pyarrow_table(columns=[key, "event_timestamp"])
    groups = data.group_by([key, "event_timestamp"]).aggregate([([], "count_all")])
    return int(pc.sum(pc.greater(groups["count_all"], 1)).as_py() or 0)


def _unique_instant_check(asset_key: str, view: FeatureView) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset_key, name="one_row_per_key_and_instant", blocking=True)
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        """Two rows at one instant would make point-in-time joins pick one at random."""
        table = feature_table(lake.settings(), view)
        duplicates = _duplicate_instants(table, view.entity) if table.exists() else 0
        return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicates": duplicates})

    return check


@dg.asset_check(asset=ranker_training_set, blocking=True)
def training_set_keeps_every_interaction(lake: LakeResource) -> dg.AssetCheckResult:
    """A point-in-time join must return one row per entity row (nulls, never drops)."""
    from feature_repo.offline import TRAINING_TABLE

    settings = lake.settings()
    expected = lake.table("gold/interactions").count()
    got = DeltaLakeTable(settings.table_path(TRAINING_TABLE)).count()
    return dg.AssetCheckResult(
        passed=got == expected, metadata={"interactions": expected, "training_rows": got}
    )


FEATURE_ASSETS = [feature_tables, feast_registry, online_features, ranker_training_set]
FEATURE_CHECKS = [
    *[_unique_instant_check(key, view) for key, view in FEATURE_TABLE_ASSETS.items()],
    training_set_keeps_every_interaction,
]
