"""Feature history: the shared feature views (flashrec.features) folded over silver events.

Spark only moves data: it builds the flat FeatureEvent rows, keys them with each view's own
``key_of``, shuffles keys into hash buckets (``groupBy(bucket).applyInPandas``) and folds
each key, in (event_time_ms, event_id) order, with the view's ``update``/``values``. No
feature is computed in Spark SQL, so the history Feast trains on is, by construction, what
the Flink job computes on the live stream.

Each output row is a key's feature values as of ``event_timestamp`` (the latest event time
the key has seen), emitted after every event. Events sharing one timestamp within a key
would give several rows for the same instant, which makes a point-in-time join pick one at
random; only the last of them (the state after all events up to that instant) is kept, so
``event_timestamp`` is strictly increasing per key.

Tables: ``gold/features_<view>`` (unpartitioned), full rebuild committed as an overwrite
with a batch key naming the silver/gold versions read, like spark_jobs.gold.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from flashrec.features import FEATURE_VIEWS, FeatureEvent, FeatureView
from flashrec.settings import Settings
from spark_jobs.delta_table import CommitResult, DeltaLakeTable
from spark_jobs.tables import lake_table

log = logging.getLogger("flashrec.features")

#: Column order and Spark types of the FeatureEvent rows (one per silver event).
EVENT_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType()),
        T.StructField("event_time_ms", T.LongType()),
        T.StructField("event_type", T.StringType()),
        T.StructField("item_id", T.StringType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("session_id", T.StringType()),
        T.StructField("price", T.DoubleType()),
        T.StructField("quantity", T.LongType()),
        T.StructField("category", T.StringType()),
        T.StructField("stock_level", T.LongType()),
    ]
)
assert EVENT_SCHEMA.fieldNames() == list(FeatureEvent._fields)

SPARK_TYPES: dict[str, T.DataType] = {
    "int64": T.LongType(),
    "float64": T.DoubleType(),
    "string": T.StringType(),
    "bool": T.BooleanType(),
}
KEY = "_key"
BUCKET = "_bucket"
#: Events one pandas call folds at most (memory of one Python worker stays small).
EVENTS_PER_BUCKET = 200_000


def feature_table_name(view: FeatureView) -> str:
    """Same name as feature_repo.definitions.feature_table_name (Feast's batch source)."""
    return f"gold/features_{view.name}"


FEATURE_TABLES: dict[str, str] = {view.name: feature_table_name(view) for view in FEATURE_VIEWS}


def feature_table(settings: Settings, view: FeatureView) -> DeltaLakeTable:
    return lake_table(settings, feature_table_name(view))


# ---- input: FeatureEvent rows ---------------------------------------------------------------


def feature_events(events: DataFrame, catalog_events: DataFrame, catalog: DataFrame) -> DataFrame:
    """Silver storefront + catalog events as FeatureEvent rows.

    Storefront events get the item's category from gold/catalog (the stream joins the same
    catalog); catalog events carry their own, falling back to the catalog's, exactly as
    ``flashrec.features.feature_event`` does.
    """
    categories = catalog.select("item_id", F.col("category").alias("_catalog_category"))
    millis = F.unix_millis(F.col("event_time"))
    storefront = events.join(categories, "item_id", "left").select(
        "event_id",
        millis.alias("event_time_ms"),
        "event_type",
        "item_id",
        "user_id",
        "session_id",
        F.col("price").cast("double").alias("price"),
        F.coalesce(F.col("quantity"), F.lit(1)).cast("long").alias("quantity"),
        F.col("_catalog_category").alias("category"),
        F.lit(None).cast("long").alias("stock_level"),
    )
    catalog_rows = catalog_events.join(categories, "item_id", "left").select(
        "event_id",
        millis.alias("event_time_ms"),
        "event_type",
        "item_id",
        F.lit(None).cast("string").alias("user_id"),
        F.lit(None).cast("string").alias("session_id"),
        F.col("price").cast("double").alias("price"),
        F.lit(1).cast("long").alias("quantity"),
        F.coalesce("category", "_catalog_category").alias("category"),
        F.col("stock_level").cast("long").alias("stock_level"),
    )
    return storefront.unionByName(catalog_rows)


def _value(value: Any) -> Any:
    """pandas gives NaN for missing numbers and numpy scalars: back to plain Python."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _events(pdf: pd.DataFrame) -> list[FeatureEvent]:
    rows = pdf[list(FeatureEvent._fields)].astype(object).itertuples(index=False, name=None)
    events = []
    for row in rows:
        v = [_value(x) for x in row]
        events.append(
            FeatureEvent(
                event_id=v[0],
                event_time_ms=int(v[1]),
                event_type=v[2],
                item_id=v[3],
                user_id=v[4],
                session_id=v[5],
                price=v[6],
                quantity=int(v[7]) if v[7] is not None else 1,
                category=v[8],
                stock_level=int(v[9]) if v[9] is not None else None,
            )
        )
    return events


# ---- the fold -------------------------------------------------------------------------------


def output_schema(view: FeatureView) -> T.StructType:
    return T.StructType(
        [
            T.StructField(view.entity, T.StringType(), False),
            T.StructField("event_timestamp", T.TimestampType(), False),
            *[T.StructField(s.name, SPARK_TYPES[s.dtype]) for s in view.features],
        ]
    )


def fold_history(view: FeatureView, key: str, events: list[FeatureEvent]) -> list[dict]:
    """Rows of one key: values after every event, ordered by (time, event_id).

    Plain Python over the shared definition (unit-testable without Spark). Of events
    sharing a timestamp only the last one's row is kept (see the module docstring).
    """
    events = sorted(events, key=lambda e: (e.event_time_ms, e.event_id))
    state = view.new_state()
    rows: list[dict] = []
    newest = None
    for i, event in enumerate(events):
        view.update(state, event)
        newest = event.event_time_ms if newest is None else max(newest, event.event_time_ms)
        last_of_instant = i + 1 == len(events) or events[i + 1].event_time_ms != newest
        if last_of_instant:
            rows.append({view.entity: key, "event_timestamp": newest, **view.values(state)})
    return rows


def _fold_bucket(view: FeatureView) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Fold every key of one hash bucket (one pandas call per bucket, not per key)."""
    columns = [view.entity, "event_timestamp", *view.feature_names]

    def fold(pdf: pd.DataFrame) -> pd.DataFrame:
        pdf = pdf.sort_values([KEY, "event_time_ms", "event_id"], kind="stable")
        rows: list[dict] = []
        for key, events in groupby(zip(pdf[KEY], _events(pdf), strict=True), key=itemgetter(0)):
            rows.extend(fold_history(view, str(key), [event for _, event in events]))
        out = pd.DataFrame.from_records(rows, columns=columns)
        out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], unit="ms", utc=True)
        for spec in view.features:  # keep None as null, not NaN/float, for Arrow
            out[spec.name] = out[spec.name].astype(object)
        return out

    return fold


def _keyed(view: FeatureView) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """Add the view's key (``view.key_of``, the shared rule), dropping keyless events."""

    def add_key(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            keys = [view.key_of(e) for e in _events(pdf)]
            out = pdf.assign(**{KEY: keys})
            yield out[out[KEY].notna()]

    return add_key


def view_history(events: DataFrame, view: FeatureView, buckets: int) -> DataFrame:
    """One view's feature history from FeatureEvent rows (EVENT_SCHEMA).

    Grouping by the key itself would call pandas once per key: with tens of thousands of
    sessions that overhead (~ms per call) dwarfs the fold. Keys are hashed into ``buckets``
    groups instead and each group folds its keys in order; a key never spans two buckets.
    """
    keyed_schema = T.StructType([*EVENT_SCHEMA.fields, T.StructField(KEY, T.StringType())])
    keyed = events.mapInPandas(_keyed(view), schema=keyed_schema)
    bucketed = keyed.withColumn(BUCKET, F.pmod(F.xxhash64(KEY), F.lit(buckets)))
    return bucketed.groupBy(BUCKET).applyInPandas(_fold_bucket(view), schema=output_schema(view))


def bucket_count(events: int, shuffle_partitions: int) -> int:
    """Enough buckets to use every core, few enough that each holds ~EVENTS_PER_BUCKET."""
    return max(shuffle_partitions, math.ceil(events / EVENTS_PER_BUCKET))


# ---- the job --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureTablesResult:
    results: dict[str, CommitResult]
    batch_key: str

    @property
    def skipped(self) -> bool:
        return all(r.skipped for r in self.results.values())


def _definitions_fingerprint() -> str:
    """Changes when a view's features change, so a schema change is never skipped."""
    text = ";".join(f"{v.name}:{','.join(v.feature_names)}" for v in FEATURE_VIEWS)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def build_feature_tables(spark: SparkSession, settings: Settings) -> FeatureTablesResult:
    """Rebuild the three feature tables from silver events + gold/catalog (idempotent)."""
    sources = {
        name: lake_table(settings, name)
        for name in ("silver/events", "silver/catalog_events", "gold/catalog")
    }
    key = "features:" + ":".join(
        [f"{name}@{table.version()}" for name, table in sources.items()]
        + [f"defs@{_definitions_fingerprint()}"]
    )
    targets = {view.name: feature_table(settings, view) for view in FEATURE_VIEWS}
    if all(table.has_batch(key) for table in targets.values()):
        log.info("feature tables: batch %s already committed, skipping", key)
        return FeatureTablesResult(
            {
                name: CommitResult(table.name, table.version(), 0, 0, skipped=True)
                for name, table in targets.items()
            },
            key,
        )
    events = feature_events(*(table.read(spark) for table in sources.values())).cache()
    buckets = bucket_count(events.count(), settings.spark_shuffle_partitions)
    results = {}
    try:
        for view in FEATURE_VIEWS:
            results[view.name] = targets[view.name].write(
                view_history(events, view, buckets),
                mode="overwrite",
                batch_key=key,
                metadata={"inputs": key},
            )
            log.info("%s: %d rows", feature_table_name(view), results[view.name].rows)
    finally:
        events.unpersist()
    return FeatureTablesResult(results, key)
