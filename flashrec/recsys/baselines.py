"""Reference recommenders: POP, S-POP and V-SKNN (vector session-kNN).

WHY keep them: a two-tier model is only worth its cost if it beats strong simple
baselines on the same protocol; V-SKNN matches SR-GNN on DIGINETICA.
Every scorer returns a sparse queries x items score matrix; ranking happens elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from flashrec.recsys.data import Queries, canonical, flatten_sessions, query_matrix, topk_per_row


def item_counts(sessions: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    items, _ = flatten_sessions(sessions)
    return np.bincount(items, minlength=n_items).astype(np.float64)


@dataclass
class Pop:
    """Global popularity: the same list for every session."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def fit(self, sessions: Sequence[np.ndarray], n_items: int) -> Pop:
        self.counts = item_counts(sessions, n_items)
        return self

    def order(self, k: int) -> np.ndarray:
        return np.argsort(-self.counts, kind="stable")[:k]

    def score(self, q: Queries, k: int = 100) -> sp.csr_matrix:
        top = self.order(k)
        vals = np.tile(self.counts[top], len(q))
        cols = np.tile(top, len(q))
        rows = np.repeat(np.arange(len(q)), len(top))
        return canonical(sp.csr_matrix((vals, (rows, cols)), shape=(len(q), len(self.counts))))


@dataclass
class SessionPop:
    """S-POP: items of the current session by count in it, popularity breaks ties."""

    pop: Pop = field(default_factory=Pop)

    def fit(self, sessions: Sequence[np.ndarray], n_items: int) -> SessionPop:
        self.pop.fit(sessions, n_items)
        return self

    def score(self, q: Queries) -> sp.csr_matrix:
        m = query_matrix(q, len(self.pop.counts), lambda s: np.ones(len(s)))
        pop = self.pop.counts / (self.pop.counts.max() + 1.0)
        m.data = m.data + pop[m.indices]
        return canonical(m)


def linear_weight(steps: np.ndarray) -> np.ndarray:
    """Position weight of a session item (1 = last): newer items describe intent better."""
    return np.maximum(1.0 - 0.1 * (steps - 1), 0.1)


@dataclass
class VSKNN:
    """Vector session-kNN (Ludewig & Jannach): neighbours are recent training sessions
    sharing items with the position-weighted current session.

    Vectorised approximation of the 'sample the m most recent sessions' step: each item
    indexes only its ``sample_size`` most recent sessions.
    """

    k: int = 100
    sample_size: int = 1000
    idf_weight: float = 1.0
    batch_size: int = 4096
    n_items: int = 0
    session_items: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    item_sessions: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    idf: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def fit(self, sessions: Sequence[np.ndarray], n_items: int) -> VSKNN:
        self.n_items = n_items
        items, sid = flatten_sessions(sessions)
        b = sp.csr_matrix((np.ones(len(items)), (sid, items)), shape=(len(sessions), n_items))
        b.sum_duplicates()
        b.data[:] = 1.0
        self.session_items = b
        # Items x sessions, keeping each item's most recent sessions only.
        bt = canonical(b.T)
        bt.data = bt.indices.astype(np.float64) + 1.0  # later session = larger value
        bt, _ = topk_per_row(bt, self.sample_size)
        bt.data[:] = 1.0
        self.item_sessions = bt
        df = np.asarray(b.sum(axis=0)).ravel()
        self.idf = np.log(len(sessions) / np.maximum(df, 1.0))
        return self

    def score(self, q: Queries) -> sp.csr_matrix:
        parts = [
            self._score_batch(q.slice(s, min(s + self.batch_size, len(q))))
            for s in range(0, len(q), self.batch_size)
        ]
        return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, self.n_items))

    def _score_batch(self, q: Queries) -> sp.csr_matrix:
        w = query_matrix(q, self.n_items, linear_weight)
        # 1000**-(step-1) encodes the most recent shared item's step in the product's
        # magnitude, so the neighbour's decay needs no per-pair Python loop.
        e = query_matrix(q, self.n_items, lambda s: 1000.0 ** -np.minimum(s - 1, 90))
        sim = canonical(w @ self.item_sessions)
        mark = canonical(e @ self.item_sessions)
        sim, keep = topk_per_row(sim, self.k)
        # Shorter steps add at most a small multiple of 1000**-j: ceil(x - 0.4) recovers j.
        step = np.maximum(np.ceil(-np.log10(mark.data[keep]) / 3.0 - 0.4), 0.0) + 1.0
        sim.data = sim.data / step
        scores = canonical(sim @ self.session_items)
        scores.data *= 1.0 + self.idf_weight * self.idf[scores.indices]
        return scores
