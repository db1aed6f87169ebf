"""Batch jobs on the feature store: load the latest history into Redis, build training sets.

Plain functions (Dagster assets and the ``bentos.model_registry train`` CLI only call them),
all through Feast's SDK so the online layout and the point-in-time semantics stay Feast's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import feast
import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from feature_repo.definitions import RANKER_SERVICE
from flashrec import features as shared
from flashrec.settings import Settings

if TYPE_CHECKING:
    from flashrec.recsys.shopper_features import ShopperRow
    from flashrec.scoring.catalog_model import TrainingData

#: Where the ranker's point-in-time training set is written (a Delta table in the lake).
TRAINING_TABLE = "gold/training_ranker_v1"
#: Features are joined as of just before each interaction, so a label never leaks into its
#: own features (a purchase must not already count in session_purchases). One millisecond
#: is the resolution of event times.
LABEL_LEAD = timedelta(milliseconds=1)
#: Materialization start: every value ever written (the latest per key wins).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class MaterializeReport:
    start: datetime
    end: datetime
    seconds: float


def materialize_latest(store: feast.FeatureStore, end: datetime | None = None) -> MaterializeReport:
    """Copy each key's latest value (up to ``end``, default now) into Redis.

    The whole history is scanned so that keys quieter than their ttl still get a value (the
    lake may hold old days). Feast's Redis writer skips rows older than what is stored, so
    this never overwrites fresher values the stream job pushed.
    """
    end = end or datetime.now(UTC)
    started = time.monotonic()
    store.materialize(start_date=EPOCH, end_date=end)
    return MaterializeReport(EPOCH, end, time.monotonic() - started)


def training_entity_rows(settings: Settings) -> pd.DataFrame:
    """One row per shopper action in gold/interactions: keys, as-of time and label columns."""
    columns = ["event_id", "event_time", "user_id", "session_id", "item_id", "event_type"]
    table = DeltaTable(str(settings.table_path("gold/interactions"))).to_pyarrow_table(
        columns=[*columns, "weight"]
    )
    rows = table.to_pandas()
    rows["event_timestamp"] = pd.to_datetime(rows.pop("event_time"), utc=True) - LABEL_LEAD
    # Anonymous actions have no user: an empty key matches no feature row (nulls), which
    # the ranker reads as "unknown shopper".
    rows["user_id"] = rows["user_id"].fillna("")
    return rows


@dataclass(frozen=True)
class TrainingSetReport:
    path: str
    rows: int
    seconds: float
    null_share: dict[str, float] = field(default_factory=dict)


def build_training_set(store: feast.FeatureStore, settings: Settings) -> TrainingSetReport:
    """Point-in-time join of the ranker's features onto every interaction, saved as Delta."""
    entity_rows = training_entity_rows(settings)
    started = time.monotonic()
    frame = store.get_historical_features(
        entity_df=entity_rows, features=store.get_feature_service(RANKER_SERVICE)
    ).to_df()
    seconds = time.monotonic() - started
    frame = frame.sort_values(["event_timestamp", "event_id"]).reset_index(drop=True)
    frame["user_id"] = frame["user_id"].replace("", None)
    names = [name for view in shared.FEATURE_VIEWS for name in view.feature_names]
    null_share = {
        name: round(float(frame[name].isna().mean()), 4) if len(frame) else 0.0 for name in names
    }
    path = settings.table_path(TRAINING_TABLE)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    write_deltalake(str(path), table, mode="overwrite", schema_mode="overwrite")
    return TrainingSetReport(str(path), len(frame), seconds, null_share)


def user_rows_as_of(
    store: feast.FeatureStore,
    keys: Sequence[tuple[str | None, datetime]],
    features: Sequence[str],
) -> list[dict[str, Any] | None]:
    """Each (user_id, t): the user's ``user_activity`` values as of strictly before t.

    One point-in-time retrieval through Feast's offline store for all keys, each joined as
    of ``t - LABEL_LEAD``: the event at t (the label the ranker learns) and anything later
    can never count. A key without a user gives None (anonymous); a user without a value
    yet (or beyond the view's ttl) gives a row of None, as the online store would.
    """
    out: list[dict[str, Any] | None] = [None] * len(keys)
    wanted = [(i, user, when) for i, (user, when) in enumerate(keys) if user]
    if not wanted:
        return out
    entity_df = pd.DataFrame(
        {
            "user_id": [user for _, user, _ in wanted],
            "event_timestamp": pd.to_datetime([when for *_, when in wanted], utc=True) - LABEL_LEAD,
            "query_row": [i for i, *_ in wanted],
        }
    )
    frame = store.get_historical_features(
        entity_df=entity_df, features=[f"{shared.USER.name}:{name}" for name in features]
    ).to_df()
    for record in frame[["query_row", *features]].to_dict("records"):
        out[int(record["query_row"])] = {name: _plain(record[name]) for name in features}
    return out


def _plain(value: Any) -> Any:
    """pandas' missing markers (NaN, NaT, NA) as None; numpy scalars as Python values."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class ShopperTrainingSet:
    """The lake's sessions (oldest first) with, per session position, the user's feature
    row as of strictly before that position's event (None: anonymous)."""

    data: TrainingData
    shopper_rows: list[list[ShopperRow]]  # aligned with data.sessions
    interactions_version: int

    def flat_rows(self) -> list[ShopperRow]:
        """Every position's row, in session order (what the coverage figures count)."""
        return [row for session in self.shopper_rows for row in session]


def interaction_rows(settings: Settings) -> tuple[list[dict[str, Any]], int]:
    """``gold/interactions`` rows in event order, and the table version read.

    WHY sorted: sessions then come out in order of their first event, so a chronological
    split (tier 1 on the head, the ranker on the tail, the newest held out) holds.
    """
    from flashrec.scoring.catalog_model import INTERACTION_COLUMNS

    table = DeltaTable(str(settings.table_path("gold/interactions")))
    rows = table.to_pyarrow_table(columns=list(INTERACTION_COLUMNS)).to_pylist()
    rows.sort(key=lambda r: (r["event_time"], r["event_seq"] or 0))
    return rows, table.version()


def shopper_training_set(store: feast.FeatureStore, settings: Settings) -> ShopperTrainingSet:
    """What every model is trained on: the lake's sessions and each position's
    point-in-time ``user_activity`` row (one offline retrieval, ``user_rows_as_of``).

    The one builder for the ``model_training_set`` asset and the ``train`` CLI, so a model
    from either reads the shopper columns the same way.
    """
    from flashrec.recsys.shopper_features import SHOPPER_INPUTS
    from flashrec.scoring.catalog_model import training_data

    rows, version = interaction_rows(settings)
    data = training_data(rows)
    flat = user_rows_as_of(store, data.as_of_keys(), SHOPPER_INPUTS)
    return ShopperTrainingSet(data, data.regroup(flat), version)
