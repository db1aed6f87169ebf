"""Point in time: the ranker's user features for a training case are the user's values
as of strictly before the case's target event, fetched through Feast's offline store.

Hand-made events where the target itself, the rest of its collapsed run (a view then a
purchase of the same item) and later events would all change the user's counts (and even
flip their top category); the ``model_training_set`` asset must include none of them.
The ``train`` CLI (``bentos.model_registry.train_from_lake``) builds its training data
the same way, so its ranker learns from real shopper columns.
Real Delta tables, real Feast (registry + duckdb offline store), real Dagster; the feature
history is folded by ``spark_jobs.features.fold_history``, the function the Spark job runs
per key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from flashrec import features as shared
from flashrec.features import FeatureEvent
from flashrec.recsys.ranker import Ranker, RankerConfig
from flashrec.recsys.shopper_features import SHOPPER_FEATURE_NAMES, SHOPPER_INPUTS
from flashrec.settings import Settings
from tests import synthetic
from tests.tiny_models import tiny_two_tier

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ARROW = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(), "bool": pa.bool_()}
# (event_id, seconds after T0, type, item, user, session, category)
EVENTS = [
    ("a1", 0, "view", "i1", "u1", "a", "c1"),
    ("a2", 10, "click", "i2", "u1", "a", "c1"),
    ("a3", 20, "purchase", "i2", "u1", "a", "c1"),  # same run as a2: one position
    ("c1", 30, "view", "i1", None, "c", "c1"),  # anonymous session
    ("c2", 40, "view", "i2", None, "c", "c1"),
    ("b1", 60, "view", "i3", "u1", "b", "c2"),
    ("b2", 70, "purchase", "i3", "u1", "b", "c2"),  # later event of b1's run
    ("b3", 80, "add_to_cart", "i4", "u1", "b", "c2"),  # counted, it would flip the top
    ("b4", 90, "view", "i5", "u1", "b", "c2"),
]


Event = tuple[str, int, str, str, str | None, str, str]


def _world_events(n_sessions: int, n_users: int) -> list[Event]:
    """The synthetic catalog world (enough sessions to fit a model) as EVENTS rows, its
    sessions shared out among a few returning users."""
    rows = synthetic.interactions(n_sessions=n_sessions)
    start = rows[0]["event_time"]
    return [
        (
            f"w{n}",
            int((r["event_time"] - start).total_seconds()),
            r["event_type"],
            r["item_id"],
            f"u{int(r['session_id'][1:]) % n_users}",
            r["session_id"],
            r["category"],
        )
        for n, r in enumerate(rows)
    ]


def _feature_events(events: list[Event] = EVENTS) -> list[FeatureEvent]:
    return [
        FeatureEvent(
            eid,
            int((T0 + timedelta(seconds=s)).timestamp() * 1000),
            kind,
            item,
            user,
            sess,
            9.0,
            1,
            cat,
        )
        for eid, s, kind, item, user, sess, cat in events
    ]


def _write_feature_table(
    settings: Settings, view: shared.FeatureView, events: list[Event] = EVENTS
) -> None:
    from feature_repo.definitions import feature_table_name
    from spark_jobs.features import fold_history

    by_key: dict[str, list[FeatureEvent]] = {}
    for event in _feature_events(events):
        key = view.key_of(event)
        if key:
            by_key.setdefault(key, []).append(event)
    rows = [row for key, events in by_key.items() for row in fold_history(view, key, events)]
    for row in rows:
        row["event_timestamp"] = datetime.fromtimestamp(row["event_timestamp"] / 1000, UTC)
    schema = pa.schema(
        [
            (view.entity, pa.string()),
            ("event_timestamp", pa.timestamp("us", tz="UTC")),
            *[(spec.name, ARROW[spec.dtype]) for spec in view.features],
        ]
    )
    path = settings.table_path(feature_table_name(view.name))
    write_deltalake(str(path), pa.Table.from_pylist(rows, schema=schema))


def _write_interactions(settings: Settings, events: list[Event] = EVENTS) -> None:
    rows = [
        {
            "event_id": eid,
            "event_time": T0 + timedelta(seconds=s),
            "user_id": user,
            "session_id": sess,
            "event_seq": n,
            "item_id": item,
            "event_type": kind,
            "weight": 1.0,
            "price": 9.0,
            "category": cat,
            "brand": "b",
            "device": "mobile",
            "referrer": "direct",
        }
        for n, (eid, s, kind, item, user, sess, cat) in enumerate(events)
    ]
    schema = pa.schema(
        [
            ("event_id", pa.string()),
            ("event_time", pa.timestamp("us", tz="UTC")),
            ("user_id", pa.string()),
            ("session_id", pa.string()),
            ("event_seq", pa.int64()),
            ("item_id", pa.string()),
            ("event_type", pa.string()),
            ("weight", pa.float64()),
            ("price", pa.float64()),
            ("category", pa.string()),
            ("brand", pa.string()),
            ("device", pa.string()),
            ("referrer", pa.string()),
        ]
    )
    path = settings.table_path("gold/interactions")
    write_deltalake(str(path), pa.Table.from_pylist(rows, schema=schema))


def _as_of(before_s: int) -> dict | None:
    """What the user's row must be for a target at T0 + before_s: the fold of the user's
    events strictly before it (None values when there were none: the store has no row)."""
    cut = int((T0 + timedelta(seconds=before_s)).timestamp() * 1000)
    earlier = [e for e in _feature_events() if e.user_id == "u1" and e.event_time_ms < cut]
    if not earlier:
        return dict.fromkeys(SHOPPER_INPUTS)
    values = shared.USER.fold(earlier)
    return {name: values[name] for name in SHOPPER_INPUTS}


def test_training_rows_are_as_of_strictly_before_the_target(
    tmp_path, redis_url, monkeypatch
) -> None:
    from assets.models import model_training_set
    from assets.resources import LakeResource
    from feature_repo.store import apply_definitions, feature_store

    monkeypatch.setenv("REDIS_URL", redis_url)
    var = tmp_path / "var"
    settings = Settings.from_env(var_dir=var)
    for view in shared.FEATURE_VIEWS:
        _write_feature_table(settings, view)
    _write_interactions(settings)
    apply_definitions(feature_store(settings))

    result = dg.materialize(
        [model_training_set],
        resources={"lake": LakeResource(var_dir=str(var))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    out = result.output_for_node("model_training_set")
    # Sessions by first event: a, c, b; the newest (b) is held out.
    assert out["train"] == [["i1", "i2"], ["i1", "i2"]] and out["held_out"] == [["i3", "i4", "i5"]]
    a_rows, c_rows = out["train_shopper_rows"]
    (b_rows,) = out["held_out_shopper_rows"]
    assert c_rows == [None, None]  # anonymous
    assert a_rows == [_as_of(0), _as_of(10)]
    assert b_rows == [_as_of(60), _as_of(80), _as_of(90)]

    # The hand-made case is sharp: had the target or anything after it been counted,
    # the figures would differ.
    assert a_rows[1]["user_clicks_1h"] == 0  # the target click at +10 s itself
    first_of_b = b_rows[0]
    assert first_of_b["user_purchases_total"] == 1  # not b2 (the run's purchase at +70 s)
    assert first_of_b["user_views_1h"] == 1  # not b1 (the target view at +60 s)
    cart = b_rows[1]
    assert cart["user_carts_1h"] == 0 and cart["user_purchases_total"] == 2
    assert cart["user_top_category"] == "c1"  # with the target cart (c2, weight 4) it is c2
    leaked = shared.USER.fold([e for e in _feature_events() if e.user_id == "u1"][:7])
    assert leaked["user_top_category"] == "c2" and leaked["user_carts_1h"] == 1


def test_cli_training_fits_the_ranker_on_the_users_rows(tmp_path, redis_url, monkeypatch) -> None:
    """``python -m bentos.model_registry train``: the ranker's shopper columns carry the
    users' point-in-time values (not NaN everywhere, as without the feature rows)."""
    from bentos import model_registry
    from feature_repo.store import apply_definitions, feature_store

    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = Settings.from_env(var_dir=tmp_path / "var")
    events = _world_events(n_sessions=120, n_users=12)
    for view in shared.FEATURE_VIEWS:
        _write_feature_table(settings, view, events)
    _write_interactions(settings, events)
    apply_definitions(feature_store(settings))

    seen: dict[str, object] = {}
    fit = Ranker.fit

    def recording_fit(self, x, *args, **kwargs):  # what XGBoost is trained on
        seen["x"], seen["names"] = x, args[-1]  # (y, qid, x_val, y_val, qid_val, names)
        return fit(self, x, *args, **kwargs)

    monkeypatch.setattr(Ranker, "fit", recording_fit)
    monkeypatch.setattr(model_registry, "register", lambda model, stage: f"test:{stage}")
    config = tiny_two_tier(RankerConfig(num_rounds=10, early_stopping=5, max_depth=3, threads=1))
    tag = model_registry.train_from_lake(settings, "challenger", config=config)
    assert tag == "test:challenger"

    x, names = np.asarray(seen["x"]), list(seen["names"])  # type: ignore[call-overload]
    for name in SHOPPER_FEATURE_NAMES:
        assert np.isfinite(x[:, names.index(name)]).any(), f"{name}: NaN in every row"
    assert len(list((settings.artifacts_dir / "models").iterdir())) == 1
