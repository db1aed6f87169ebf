"""Ranker training rows from session cases: the one place that builds (X, y, groups).

WHY one function: ``TwoTierModel.fit`` and the AutoML study (``automl.data``) must train
on identical rows, or the study tunes a ranker for data the deployed model never sees.
It lives in flashrec.recsys, not in automl, so the model (and serving) never imports
Optuna.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from flashrec.recsys.candidates import CandidateGenerator, Candidates
from flashrec.recsys.data import Queries
from flashrec.recsys.ranker_features import FEATURE_NAMES, build_features

log = logging.getLogger(__name__)


def ranking_rows(
    gen: CandidateGenerator,
    q: Queries,
    *,
    sample: bool,
    neg_rate: float,
    batch_size: int,
    seed: int,
    on_batch: Callable[[Candidates, np.ndarray], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X over FEATURE_NAMES, y, qid, rows, items) for the cases of ``q``, batch by batch.

    With ``sample`` (training): only cases whose target is a candidate (the others carry
    no ranking signal) and a uniform share ``neg_rate`` of negatives (choosing them by a
    feature would teach the ranker the sampling rule). qid is the global case index, so
    the rows of one case are contiguous and qid is non-decreasing, as XGBoost requires;
    ``rows`` equals qid (kept apart for readability at call sites). ``on_batch(candidates,
    targets)`` sees each batch (e.g. for ``source_report``).
    """
    rng = np.random.default_rng(seed)
    xs, ys, rs, cs = [], [], [], []
    for start in range(0, len(q), batch_size):
        b = q.slice(start, min(start + batch_size, len(q)))
        cands = gen.generate(b)
        rows, cols, x = build_features(gen, b, cands)
        y = (cols == b.targets[rows]).astype(np.float32)
        if on_batch is not None:
            on_batch(cands, b.targets)
        if sample:
            has_pos = np.zeros(len(b), dtype=bool)
            has_pos[rows[y > 0]] = True
            keep = has_pos[rows] & ((y > 0) | (rng.random(len(rows)) < neg_rate))
            rows, cols, x, y = rows[keep], cols[keep], x[keep], y[keep]
        xs.append(x)
        ys.append(y)
        rs.append(rows + start)
        cs.append(cols)
        log.info("features: %d/%d cases", min(start + batch_size, len(q)), len(q))
    if not xs:
        empty = np.zeros(0, np.int64)
        x0 = np.zeros((0, len(FEATURE_NAMES)), np.float32)
        return x0, empty.astype(np.float32), empty, empty, empty
    rows_all = np.concatenate(rs)
    return np.concatenate(xs), np.concatenate(ys), rows_all, rows_all, np.concatenate(cs)
