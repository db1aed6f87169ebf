"""Batch evaluation of any scorer on (prefix, next item) cases, with timing.

WHY one function: baselines and the two-tier model are compared on exactly the same
cases, cut-off, tie-breaking (popularity) and padding, so the table is fair.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from flashrec.recsys.data import Queries
from flashrec.recsys.metrics import precision_mrr, topk_from_sparse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    name: str
    p_at_k: float
    mrr_at_k: float
    n_cases: int
    fit_s: float = 0.0
    score_s: float = 0.0

    def row(self) -> str:
        return (
            f"{self.name:<22} {self.p_at_k:7.2f} {self.mrr_at_k:8.2f} "
            f"{self.fit_s:8.1f} {self.score_s:9.1f} {self.n_cases:8d}"
        )


HEADER = f"{'model':<22} {'P@20':>7} {'MRR@20':>8} {'fit_s':>8} {'score_s':>9} {'cases':>8}"


def evaluate_sparse_scorer(
    name: str,
    score: Callable[[Queries], sp.csr_matrix],
    q: Queries,
    popularity: np.ndarray,
    k: int = 20,
    batch_size: int = 8192,
    fit_s: float = 0.0,
) -> EvalResult:
    """Rank each case by ``score`` (ties broken by popularity, short lists padded with it)."""
    pop_norm = popularity / max(float(popularity.max()), 1.0)
    fill = np.argsort(-popularity, kind="stable")[: 2 * k]
    t0 = time.perf_counter()
    tops = []
    for start in range(0, len(q), batch_size):
        b = q.slice(start, min(start + batch_size, len(q)))
        s = sp.csr_matrix(score(b))
        s.data = s.data + 1e-7 * pop_norm[s.indices]
        tops.append(topk_from_sparse(s, k, fill))
    elapsed = time.perf_counter() - t0
    top = np.concatenate(tops) if tops else np.zeros((0, k), np.int64)
    p, mrr = precision_mrr(top, q.targets)
    log.info("%s: P@%d=%.2f MRR@%d=%.2f (%d cases, %.1fs)", name, k, p, k, mrr, len(q), elapsed)
    return EvalResult(name, p, mrr, len(q), fit_s, elapsed)


def evaluate_topk(
    name: str, top: np.ndarray, q: Queries, fit_s: float, score_s: float
) -> EvalResult:
    p, mrr = precision_mrr(top, q.targets)
    return EvalResult(name, p, mrr, len(q), fit_s, score_s)
