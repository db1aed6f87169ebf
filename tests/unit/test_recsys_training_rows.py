"""``ranking_rows``: the one builder of ranker rows (model fit and AutoML both use it)."""

from __future__ import annotations

import numpy as np
import pytest

from flashrec.recsys.candidates import CandidateGenerator
from flashrec.recsys.data import Queries, expand_pairs
from flashrec.recsys.ranker_features import FEATURE_NAMES
from flashrec.recsys.shopper_features import CONTEXT_WIDTH, QUERY_FEATURES
from flashrec.recsys.training_rows import ranking_rows
from tests.tiny_models import tiny_two_tier

N_ITEMS = 61
VIEWS = FEATURE_NAMES.index("user_views_1h")


def _world(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        cur = int(rng.integers(1, 61))
        s = [cur]
        for _ in range(int(rng.integers(2, 6)) - 1):
            cur = cur % 60 + 1 if rng.random() < 0.7 else int(rng.integers(1, 61))
            s.append(cur)
        out.append(np.array(s))
    return out


@pytest.fixture(scope="module")
def gen() -> CandidateGenerator:
    return CandidateGenerator(tiny_two_tier().candidates).fit(_world(300, 0), N_ITEMS)


@pytest.fixture(scope="module")
def queries() -> Queries:
    """Cases whose context row says which case it is (views_1h = session * 100 + t)."""
    sessions = _world(60, 1)
    contexts = []
    for i, s in enumerate(sessions):
        ctx = np.full((len(s), CONTEXT_WIDTH), np.nan, np.float32)
        ctx[:, QUERY_FEATURES.index("user_views_1h")] = i * 100 + np.arange(len(s))
        contexts.append(ctx)
    return expand_pairs(sessions, contexts)


def _rows(gen: CandidateGenerator, q: Queries, batch: int, **kw) -> tuple[np.ndarray, ...]:
    args = {"sample": False, "neg_rate": 0.25, "seed": 3, **kw}
    return ranking_rows(gen, q, batch_size=batch, **args)


def test_all_rows_labels_and_groups(gen: CandidateGenerator, queries: Queries) -> None:
    seen: list[int] = []
    x, y, qid, rows, items = _rows(gen, queries, 7, on_batch=lambda c, t: seen.append(len(t)))
    assert x.shape == (len(y), len(FEATURE_NAMES)) and x.dtype == np.float32
    assert np.array_equal(qid, rows) and np.all(np.diff(qid) >= 0)  # XGBoost's grouping
    assert sum(seen) == len(queries)  # every batch reported once
    assert np.array_equal(y, (items == queries.targets[qid]).astype(np.float32))
    # Each case has exactly its candidates, at most once, and its context row.
    for case in np.unique(qid)[:10]:
        mine = items[qid == case]
        assert len(mine) == len(set(mine.tolist())) > 0
    assert np.array_equal(x[:, VIEWS], queries.context[qid, 0])


def test_batching_changes_nothing(gen: CandidateGenerator, queries: Queries) -> None:
    """Same rows (and the same sampled negatives) whatever the batch size: the context
    rides with its case across batch boundaries and the sampling stream is global."""
    for sample in (False, True):
        small = _rows(gen, queries, 5, sample=sample)
        large = _rows(gen, queries, 4096, sample=sample)
        for a, b in zip(small, large, strict=True):
            np.testing.assert_array_equal(a, b)


def test_training_sample(gen: CandidateGenerator, queries: Queries) -> None:
    _, _, qid_all, _, items_all = _rows(gen, queries, 64)
    hit_cases = np.unique(qid_all[items_all == queries.targets[qid_all]])
    # All negatives kept: exactly the rows of the cases whose target is a candidate.
    x, y, qid, _, items = _rows(gen, queries, 64, sample=True, neg_rate=1.0)
    assert np.array_equal(np.unique(qid), hit_cases)
    assert np.array_equal(items, items_all[np.isin(qid_all, hit_cases)])
    assert np.bincount(qid[y > 0]).max() == 1 and y.sum() == len(hit_cases)
    # No negatives: one positive row per such case.
    _, y0, qid0, _, _ = _rows(gen, queries, 64, sample=True, neg_rate=0.0)
    assert y0.all() and np.array_equal(qid0, hit_cases)
    # A share of negatives, drawn uniformly: positives all kept, negatives thinned.
    _, yq, _, _, _ = _rows(gen, queries, 64, sample=True, neg_rate=0.25)
    negatives = int((y == 0).sum())
    assert yq.sum() == len(hit_cases) and 0.1 * negatives < (yq == 0).sum() < 0.4 * negatives


def test_no_cases_gives_empty_arrays(gen: CandidateGenerator) -> None:
    x, y, qid, rows, items = _rows(gen, expand_pairs([np.array([1])]), 8)
    assert x.shape == (0, len(FEATURE_NAMES)) and len(y) == len(qid) == len(items) == 0
