"""Scorer decisions without services: tiers, coalescing, content lists, vocabulary, refusals."""

from __future__ import annotations

import json

import pytest

from flashrec.eventlog.base import LogRecord
from flashrec.scoring.catalog import Catalog, ItemInfo, content_list, price_bands
from flashrec.scoring.catalog_model import CatalogModel, TrainingSetTooSmall, training_data
from flashrec.scoring.tiers import coalesce, parse_signal, session_state, shopper_states, user_state
from flashrec.scoring.vocab import Vocabulary
from tests import synthetic


def _rec(i: int, **fields: str) -> LogRecord:
    return LogRecord(f"{i}-0", json.dumps(fields))


def test_tier_follows_interaction_count() -> None:
    assert session_state("s1", None).tier == "segment"  # anonymous, nothing seen
    few = session_state("s1", {"session_events": 3, "session_recent_items": '["a","b"]'})
    assert few.tier == "content" and few.recent_items == ("a", "b")
    many = session_state("s1", {"session_events": 12, "session_recent_items": "[]"})
    assert many.tier == "personalized"
    quiet_hour = user_state("u1", {"user_recent_items": json.dumps([f"i{i}" for i in range(11)])})
    assert quiet_hour.tier == "personalized" and quiet_hour.n_interactions == 11
    busy = user_state("u1", {"user_views_1h": 4, "user_clicks_1h": 2, "user_recent_items": "[]"})
    assert busy.tier == "content" and busy.n_interactions == 6
    assert session_state("s2", {"session_is_anonymous": False, "session_events": 5}).skip


def test_user_state_carries_the_online_row_for_the_ranker() -> None:
    """The model service gets the user's feature row (JSON-safe, recent items apart);
    anonymous sessions and users the store does not know get none."""
    row = {
        "user_id": "u1",
        "user_recent_items": '["a"]',
        "user_views_1h": 3,
        "user_top_category": "shoes",
        "user_top_category_share": float("nan"),
    }
    st = user_state("u1", row)
    assert st.user_row == {
        "user_views_1h": 3,
        "user_top_category": "shoes",
        "user_top_category_share": None,
    }
    json.dumps(st.user_row, allow_nan=False)
    assert user_state("u2", {"user_id": "u2", "user_views_1h": None}).user_row is None
    assert user_state("u3", None).user_row is None
    assert session_state("s1", {"session_events": 12}).user_row is None


def test_signals_parse_and_coalesce_per_shopper() -> None:
    recs = [
        _rec(1, user_id="u1", reason="view"),
        _rec(2, session_id="s9", reason="click"),
        _rec(3, user_id="u1", reason="click"),
        _rec(4, reason="orphan"),
        LogRecord("5-0", "not json"),
    ]
    signals = [s for r in recs if (s := parse_signal(r))]
    assert [s.shopper for s in signals] == ["u:u1", "s:s9", "u:u1"]
    groups = coalesce(signals)
    assert list(groups) == ["u:u1", "s:s9"]
    assert [s.record_id for s in groups["u:u1"]] == ["1-0", "3-0"]
    calls: list[tuple[str, list[str]]] = []

    def read(view: str, keys: list[str]) -> list[dict]:
        calls.append((view, list(keys)))
        return [{} for _ in keys]

    states = shopper_states(signals, read)
    assert set(states) == {"u:u1", "s:s9"}
    assert calls == [("user_activity", ["u1"]), ("session_activity", ["s9"])]  # batched, deduped


def _catalog() -> Catalog:
    items = [
        ItemInfo("a1", "shoes", "nike", "low", 5.0),
        ItemInfo("a2", "shoes", "nike", "high", 9.0),
        ItemInfo("a3", "shoes", "puma", "low", 1.0),
        ItemInfo("b1", "hats", "nike", "low", 7.0),
        ItemInfo("c1", "bags", "gucci", "premium", 100.0),
    ]
    return Catalog(items={i.item_id: i for i in items})


def test_content_list_prefers_shared_attributes_then_popularity() -> None:
    ranked = content_list(_catalog(), ["a1"], 4)
    ids = [i for i, _ in ranked]
    assert "a1" not in ids  # what they viewed is not recommended back
    assert ids[:2] == ["a2", "a3"]  # same category first, more matches first
    assert ids[2] == "b1"  # brand only
    assert ids[3] == "c1"  # padded with global popularity
    assert all(a[1] >= b[1] for a, b in zip(ranked, ranked[1:], strict=False))
    assert [i for i, _ in content_list(_catalog(), [], 2)] == ["c1", "a2"]  # cold: popular


def test_price_bands_are_quartiles() -> None:
    bands = price_bands({f"x{i}": float(i) for i in range(8)})
    assert bands["x0"] == "low" and bands["x7"] == "premium"
    assert sorted(set(bands.values())) == sorted({"low", "mid", "high", "premium"})


def test_vocabulary_round_trip(tmp_path) -> None:
    vocab = Vocabulary(["b", "a", "b", "c"])
    assert vocab.ids == ["b", "a", "c"] and len(vocab) == 3
    assert vocab.encode(["c", "zzz", "b"]) == [2, 0]  # unknown items dropped
    assert vocab.decode([2, 0]) == ["c", "b"]
    vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json").ids == vocab.ids


def test_catalog_json_round_trip() -> None:
    data = training_data(synthetic.interactions(n_sessions=40))
    again = Catalog.from_json(json.loads(json.dumps(data.catalog.to_json())))
    assert again.items == data.catalog.items and again.segments == data.catalog.segments
    assert set(again.segments) == {"device", "referrer"}
    assert all(len(s) >= 2 for s in data.sessions)


def test_tiny_training_set_is_refused(tmp_path) -> None:
    data = training_data(synthetic.interactions(n_sessions=10))
    with pytest.raises(TrainingSetTooSmall, match="training set too small"):
        CatalogModel.fit(data.sessions, data.catalog)
    with pytest.raises(TrainingSetTooSmall):
        CatalogModel.fit([], Catalog())
    assert not any(tmp_path.iterdir())  # nothing written


def test_scorer_side_imports_no_engine_and_no_training_code() -> None:
    code = (
        "import sys, bentos.scorer_process, flashrec.scoring.scorer; "
        "bad = [m for m in ('bentoml', 'feast', 'pyspark', 'pyflink', 'dagster', 'xgboost', "
        "'faiss', 'flashrec.recsys') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_model_failing_for_everyone_sets_no_shopper_aside() -> None:
    """Error answers for several shoppers are retried shopper by shopper; when each fails
    alone too, the model is at fault (not a query): nobody is dead-lettered."""
    from flashrec.scoring.isolation import isolate
    from flashrec.scoring.tiers import user_state

    pairs = [(user_state(f"u{i}", {}), "champion") for i in range(6)]
    queries = [{"recent_items": [f"i{i}"], "k": 5, "variant": "champion"} for i in range(6)]
    broken = {"items": [], "scores": [], "model_version": "m", "error": "boom"}
    calls: list[int] = []

    def rank(qs):
        calls.append(len(qs))
        return [dict(broken) for _ in qs]

    answers = [dict(broken) for _ in pairs]
    poisoned: dict[str, str] = {}
    isolate(rank, pairs, queries, answers, lambda a: not a.get("error"), poisoned, "champion")
    assert poisoned == {} and len(calls) == 4  # gave up after the probe

    def rank_one_bad(qs):
        return [
            dict(broken) if q["recent_items"] == ["i3"] else {"items": ["x"], "scores": [1.0]}
            for q in qs
        ]

    answers = [dict(broken) for _ in pairs]
    isolate(
        rank_one_bad, pairs, queries, answers, lambda a: not a.get("error"), poisoned, "champion"
    )
    assert poisoned == {"u:u3": "model: boom"}
    assert sum(1 for a in answers if not a.get("error")) == 5


def test_a_batch_call_that_raises_for_everyone_alone_is_an_outage() -> None:
    """The batched call raised and every shopper's own call raises too: not poison, the
    model service is refusing everything, so everyone is deferred (ModelServiceDown)."""
    import pytest

    from flashrec.scoring.isolation import isolate
    from flashrec.scoring.model_client import ModelServiceDown, QueryRejected
    from flashrec.scoring.tiers import user_state

    pairs = [(user_state(f"u{i}", {}), "champion") for i in range(3)]
    queries = [{"recent_items": [f"i{i}"], "k": 5, "variant": "champion"} for i in range(3)]

    def rank(qs):
        raise QueryRejected("HTTP 400")

    poisoned: dict[str, str] = {}
    with pytest.raises(ModelServiceDown):
        isolate(rank, pairs, queries, None, lambda a: True, poisoned, "champion")
    assert poisoned == {}


def _client_answering(*statuses: int):
    """A ModelClient whose service answers ``statuses`` in turn (then 200), and the calls."""
    import httpx

    from flashrec.scoring.model_client import ModelClient

    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = statuses[len(calls)] if len(calls) < len(statuses) else 200
        calls.append(status)
        return httpx.Response(status, json=[{"items": [], "scores": []}])

    client = ModelClient("http://model.test")
    client._http = httpx.Client(
        base_url="http://model.test", transport=httpx.MockTransport(handler)
    )
    return client, calls


def test_model_client_retries_a_full_queue_then_reports_the_outage() -> None:
    from flashrec.scoring.model_client import ModelServiceDown, QueryRejected

    client, calls = _client_answering(503, 503)
    assert client.rank([{"recent_items": [], "k": 5}]) == [{"items": [], "scores": []}]
    assert calls == [503, 503, 200]  # two retries, backing off, then the answer

    client, calls = _client_answering(503, 503, 503)
    with pytest.raises(ModelServiceDown, match="HTTP 503"):
        client.rank([{"recent_items": [], "k": 5}])
    assert calls == [503, 503, 503]  # three tries, no more

    client, calls = _client_answering(422)
    with pytest.raises(QueryRejected):
        client.rank([{"recent_items": [], "k": 5}])
    assert calls == [422]  # the query's fault: never retried
