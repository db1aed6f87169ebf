"""Two-tier model on a tiny learnable world: candidates, ranker and artifact round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flashrec.recsys.baselines import Pop
from flashrec.recsys.candidates import CandidateGenerator, source_report
from flashrec.recsys.data import expand_pairs, from_prefixes
from flashrec.recsys.evaluate import evaluate_sparse_scorer, evaluate_topk
from flashrec.recsys.model import TwoTierConfig, TwoTierModel
from flashrec.recsys.ranker import RankerConfig
from tests.tiny_models import tiny_two_tier

N_ITEMS = 61


def _world(n_sessions: int, seed: int) -> list[np.ndarray]:
    """Item i is usually followed by i+1 (mod 60); a few 'hot' items are popular noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_sessions):
        length = int(rng.integers(2, 7))
        cur = int(rng.integers(1, 61))
        s = [cur]
        for _ in range(length - 1):
            cur = cur % 60 + 1 if rng.random() < 0.8 else int(rng.choice([1, 2, 3]))
            s.append(cur)
        out.append(np.array(s))
    return out


def _small_config() -> TwoTierConfig:
    return tiny_two_tier(RankerConfig(num_rounds=30, early_stopping=10, max_depth=4))


@pytest.fixture(scope="module")
def fitted() -> TwoTierModel:
    return TwoTierModel(_small_config()).fit(_world(600, 0), N_ITEMS)


def test_candidate_recall_report() -> None:
    sessions = _world(300, 1)
    gen = CandidateGenerator(_small_config().candidates).fit(sessions, N_ITEMS)
    q = expand_pairs(_world(50, 2))
    cands = gen.generate(q)
    stats = source_report([(cands, q.targets)], cutoffs=(5, 20))
    assert 0 <= stats["recall@5"] <= stats["recall@20"] <= stats["recall@all"] <= 100
    assert stats["recall@all"] > 70  # transitions alone find the 80% chain steps
    assert stats["trans.recall"] > 70


def test_ranker_beats_popularity(fitted: TwoTierModel) -> None:
    test_sessions = _world(100, 3)
    q = expand_pairs(test_sessions)
    model_res = evaluate_topk("two-tier", fitted.score_batch(q, 5), q, 0.0, 0.0)
    pop = Pop().fit(_world(600, 0), N_ITEMS)
    pop_res = evaluate_sparse_scorer("pop", pop.score, q, pop.counts, k=5)
    assert model_res.p_at_k > pop_res.p_at_k + 20
    assert fitted.report.validation["P@20"] > 50


def test_recommend_api_and_artifact_round_trip(fitted: TwoTierModel, tmp_path: Path) -> None:
    rec = fitted.recommend([10, 11], k=5)
    assert len(rec) == 5 and len(set(rec)) == 5 and rec[0] == 12
    assert len(fitted.recommend([], k=3)) == 3  # empty session: popular items
    assert len(fitted.recommend([9999], k=3)) == 3  # unknown items are ignored
    folder = fitted.save(tmp_path / "model")
    assert {p.name for p in folder.iterdir()} == {"arrays.npz", "ranker.json", "manifest.json"}
    loaded = TwoTierModel.load(folder)
    batch = [[5, 6], [20], [1, 2, 3]]
    assert np.array_equal(loaded.recommend_batch(batch, 10), fitted.recommend_batch(batch, 10))


def test_score_batch_reports_candidate_stats(fitted: TwoTierModel) -> None:
    q = from_prefixes([np.array([4, 5])], np.array([6]))
    stats: dict[str, float] = {}
    top = fitted.score_batch(q, 3, candidate_stats=stats)
    assert top[0, 0] == 6 and stats["recall@all"] == 100.0


def test_features_do_not_see_the_target() -> None:
    """No leakage: a case's features depend on its prefix only, never on its next item."""
    from flashrec.recsys.ranker_features import build_features

    gen = CandidateGenerator(_small_config().candidates).fit(_world(300, 4), N_ITEMS)
    prefixes = [np.array([3, 4]), np.array([10])]
    a = from_prefixes(prefixes, np.array([5, 11]))
    b = from_prefixes(prefixes, np.array([40, 2]))
    ra, ca, xa = build_features(gen, a, gen.generate(a))
    rb, cb, xb = build_features(gen, b, gen.generate(b))
    assert np.array_equal(ra, rb) and np.array_equal(ca, cb)
    assert np.array_equal(np.nan_to_num(xa, nan=-1), np.nan_to_num(xb, nan=-1))


# ---- shopper features (the user's feature-store row) ----------------------------------------

TASTES = ("odd", "even")


def _taste_world(n_sessions: int, seed: int) -> tuple[list[np.ndarray], list[list[dict | None]]]:
    """Two-item sessions: after item i comes i+1 or i+2, whichever lies in the shopper's
    favourite category (odd or even items). The session says nothing about the taste, so
    without the user's row it is a coin flip. Every fifth session is anonymous (no row)."""
    rng = np.random.default_rng(seed)
    sessions, rows = [], []
    for n in range(n_sessions):
        taste = int(rng.integers(2))
        cur = int(rng.integers(1, 61))
        a, b = cur % 60 + 1, (cur + 1) % 60 + 1
        s = [cur, a if (a % 2 == 1) == (taste == 0) else b]
        anonymous = n % 5 == 0
        row = None if anonymous else _user_row(TASTES[taste])
        sessions.append(np.array(s))
        rows.append([row] * len(s))
    return sessions, rows


def _user_row(taste: str) -> dict:
    return {
        "user_views_1h": 4,
        "user_clicks_1h": 1,
        "user_carts_1h": 0,
        "user_purchases_1h": 0,
        "user_purchases_total": 2,
        "user_sessions_total": 3,
        "user_top_category": taste,
        "user_top_category_share": 0.7,
    }


TASTE_ATTRS = {i: TASTES[(i + 1) % 2] for i in range(1, 61)}  # 1 -> odd, 2 -> even


@pytest.fixture(scope="module")
def with_users() -> TwoTierModel:
    sessions, rows = _taste_world(1000, 5)
    return TwoTierModel(_small_config()).fit(sessions, N_ITEMS, TASTE_ATTRS, rows)


def test_booster_has_the_shopper_features_and_learns_from_them(with_users: TwoTierModel) -> None:
    from flashrec.recsys.shopper_features import SHOPPER_FEATURE_NAMES

    booster = with_users.ranker.booster
    assert booster is not None
    assert set(SHOPPER_FEATURE_NAMES) <= set(booster.feature_names or [])
    assert with_users.ranker.importance().get("cand_in_top_category", 0.0) > 0
    sessions, _ = _taste_world(1000, 5)
    blind = TwoTierModel(_small_config()).fit(sessions, N_ITEMS, TASTE_ATTRS)
    # Without the rows the next item is a coin flip between two candidates.
    assert with_users.report.validation["MRR@20"] > blind.report.validation["MRR@20"] + 5


def test_serving_columns_follow_the_users_row(with_users: TwoTierModel) -> None:
    """Serving path: a query with a user row gets that row's values in the shopper columns,
    one without gets NaN; candidate/session columns do not depend on the row."""
    from flashrec.recsys.shopper_features import SHOPPER_FEATURE_NAMES

    shopper = [with_users.feature_names.index(n) for n in SHOPPER_FEATURE_NAMES]
    other = [i for i in range(len(with_users.feature_names)) if i not in shopper]
    rows_a, items_a, xa = with_users.pair_features([[10]], [_user_row("odd")])
    rows_b, items_b, xb = with_users.pair_features([[10]], [None])
    assert np.array_equal(items_a, items_b)
    assert np.array_equal(np.nan_to_num(xa[:, other], nan=-1), np.nan_to_num(xb[:, other], nan=-1))
    assert np.isnan(xb[:, shopper]).all()
    views = with_users.feature_names.index("user_views_1h")
    match = with_users.feature_names.index("cand_in_top_category")
    assert (xa[:, views] == 4).all()
    assert xa[items_a == 11, match].tolist() == [1.0] and xa[items_a == 12, match].tolist() == [0.0]
    # ... and the ranking follows the shopper: the odd-loving user gets 11, the other 12.
    top = with_users.recommend_batch([[10], [10]], 1, [_user_row("odd"), _user_row("even")])
    assert top[:, 0].tolist() == [11, 12]


def test_shopper_context_is_the_one_row_definition() -> None:
    from flashrec.recsys.shopper_features import (
        CONTEXT_WIDTH,
        QUERY_FEATURES,
        ItemCategories,
        shopper_context,
    )

    cats = ItemCategories.from_attributes({1: "b", 2: "a", 3: "b"}, 5)
    assert cats.names == ("a", "b") and cats.of_item.tolist() == [-1, 1, 0, 1, -1]
    row = {"user_views_1h": 3, "user_purchases_total": None, "user_top_category": "b"}
    ctx = shopper_context([row, None, {"user_top_category": "new"}, {}], cats)
    assert ctx.shape == (4, CONTEXT_WIDTH) and ctx.dtype == np.float32
    assert ctx[0, QUERY_FEATURES.index("user_views_1h")] == 3
    assert np.isnan(ctx[0, QUERY_FEATURES.index("user_purchases_total")])  # missing value
    assert ctx[0, -1] == 1 and ctx[2, -1] == -1  # a category the model never saw: no match
    assert np.isnan(ctx[1]).all() and np.isnan(ctx[3]).all()  # anonymous / empty row
