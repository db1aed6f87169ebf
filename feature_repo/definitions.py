"""Feast objects for the three shared feature views, each one batch view + its push source.

Names, join keys, fields and types all come from ``flashrec.features`` (the one definition
the Spark and Flink jobs run), so Feast can never drift from the code computing the values.

Per view, side by side:

* the **batch source**: the Delta table ``gold/features_<view>`` written by
  ``spark_jobs.features`` (one row per event: key, ``event_timestamp`` = as-of time,
  features). The offline store (duckdb) point-in-time joins training rows against it and
  ``materialize`` copies the latest values into Redis.
* the **push source** ``<view>_push`` wrapping that batch source: the Flink job pushes live
  values through it (``store.push`` / ``write_to_online_store``), and Feast knows the pushed
  rows belong to the same view as the history.
* the **feature view** named exactly like ``FeatureView.name`` (``user_activity`` ...).

TTLs (how old a value may be and still be served/joined): users and items keep 2 days
(a shopper returning the next day still has a profile; an item's stock/price stays known
across a quiet night), a session's features expire after 1 day (a visit older than that is
over; the session gap is 30 minutes, the margin covers late events and replays).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource
from feast.data_format import DeltaFormat
from feast.types import Bool, Float64, Int64, String
from feast.value_type import ValueType

from flashrec import features as shared

FEAST_TYPES = {"int64": Int64, "float64": Float64, "string": String, "bool": Bool}

#: How long a value stays valid (see the module docstring for why).
TTLS: dict[str, timedelta] = {
    shared.USER.name: timedelta(days=2),
    shared.SESSION.name: timedelta(days=1),
    shared.ITEM.name: timedelta(days=2),
}

#: The ranker reads the shopper, the visit and the candidate item.
RANKER_SERVICE = "ranker_v1"


def feature_table_name(view_name: str) -> str:
    """Lake table holding the history of one view (see spark_jobs.features)."""
    return f"gold/features_{view_name}"


def push_source_name(view_name: str) -> str:
    return f"{view_name}_push"


def entity(view: shared.FeatureView) -> Entity:
    return Entity(
        name=view.entity.removesuffix("_id"),
        join_keys=[view.entity],
        value_type=ValueType.STRING,
        description=f"Join key {view.entity} of {view.name}",
    )


def feature_view(view: shared.FeatureView, lake_dir: Path) -> FeatureView:
    """One Feast view over the Delta history, fed live through its push source."""
    batch = FileSource(
        name=f"{view.name}_delta",
        path=str(lake_dir / feature_table_name(view.name)),
        file_format=DeltaFormat(),
        timestamp_field="event_timestamp",
        description=f"Delta table {feature_table_name(view.name)} (spark_jobs.features)",
    )
    # The stream counterpart: same schema, pushed by the Flink job; history stays `batch`.
    push = PushSource(name=push_source_name(view.name), batch_source=batch)
    return FeatureView(
        name=view.name,
        entities=[entity(view)],
        ttl=TTLS[view.name],
        schema=[
            Field(name=spec.name, dtype=FEAST_TYPES[spec.dtype], description=spec.description)
            for spec in view.features
        ],
        source=push,
        online=True,
        description=view.description,
    )


def build_definitions(lake_dir: Path) -> list:
    """Every Feast object of the project, sources pointing into ``lake_dir``."""
    views = {view.name: feature_view(view, lake_dir) for view in shared.FEATURE_VIEWS}
    ranker = FeatureService(
        name=RANKER_SERVICE,
        features=[views[shared.USER.name], views[shared.SESSION.name], views[shared.ITEM.name]],
        description="Features of the L2 ranker: shopper + visit + candidate item.",
    )
    entities = [entity(view) for view in shared.FEATURE_VIEWS]
    return [*entities, *views.values(), ranker]
