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
