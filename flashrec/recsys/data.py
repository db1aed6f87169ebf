"""Session data as flat numpy arrays, and sparse helpers shared by every model.

WHY flat arrays: 700k training pairs and 60k test cases are scored in batches through
scipy.sparse products; Python loops per session would dominate the run time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Queries:
    """A batch of session prefixes (CSR layout) and, when known, their next items.

    ``context`` (optional): one row of shopper features per query (see
    ``shopper_features.shopper_context``); it travels with the queries through slicing and
    subsetting so batching can never pair a query with another shopper's row.
    """

    indptr: np.ndarray  # (n+1,) int64
    items: np.ndarray  # flat prefix items, oldest first within each query
    targets: np.ndarray  # (n,) int64; -1 when unknown
    context: np.ndarray | None = None  # (n, width) float32; None: no shopper known

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def row_of_item(self) -> np.ndarray:
        """Query index of every flat prefix position."""
        return np.repeat(np.arange(len(self)), self.lengths)

    @property
    def steps_from_end(self) -> np.ndarray:
        """1 for the last item of each prefix, 2 for the one before, ..."""
        return self.indptr[1:][self.row_of_item] - np.arange(len(self.items))

    @property
    def last_items(self) -> np.ndarray:
        out = np.full(len(self), -1, dtype=np.int64)
        nonempty = self.lengths > 0
        out[nonempty] = self.items[self.indptr[1:][nonempty] - 1]
        return out

    def slice(self, start: int, stop: int) -> Queries:
        lo, hi = self.indptr[start], self.indptr[stop]
        return Queries(
            self.indptr[start : stop + 1] - lo,
            self.items[lo:hi],
            self.targets[start:stop],
            None if self.context is None else self.context[start:stop],
        )

    def take(self, rows: np.ndarray) -> Queries:
        return from_prefixes(
            [self.prefix(int(r)) for r in rows],
            self.targets[rows],
            None if self.context is None else self.context[rows],
        )

    def prefix(self, i: int) -> np.ndarray:
        return self.items[self.indptr[i] : self.indptr[i + 1]]


def from_prefixes(
    prefixes: Sequence[np.ndarray],
    targets: np.ndarray | None = None,
    context: np.ndarray | None = None,
) -> Queries:
    lengths = np.fromiter((len(p) for p in prefixes), dtype=np.int64, count=len(prefixes))
    indptr = np.zeros(len(prefixes) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    items = (
        np.concatenate([np.asarray(p, dtype=np.int64) for p in prefixes])
        if len(prefixes)
        else np.zeros(0, np.int64)
    )
    if targets is None:
        targets = np.full(len(prefixes), -1, dtype=np.int64)
    if context is not None and len(context) != len(prefixes):
        raise ValueError(f"{len(context)} context rows for {len(prefixes)} queries")
    return Queries(indptr, items, np.asarray(targets, dtype=np.int64), context)


def flatten_sessions(sessions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(flat items, session index per position) for vectorised pair building."""
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions])
    sid = np.repeat(np.arange(len(sessions)), lengths)
    return items, sid


def expand_pairs(
    sessions: Sequence[np.ndarray], contexts: Sequence[np.ndarray] | None = None
) -> Queries:
    """Every (prefix, next item) of every session, as in the SR-GNN protocol.

    A target at position t only ever sees items at positions < t (no future leakage).
    ``contexts[s][t]`` (optional) is the shopper's context row as of just before the event
    at position t of session s; the case whose target is at t gets that row.
    """
    if contexts is not None and len(contexts) != len(sessions):
        raise ValueError(f"{len(contexts)} context arrays for {len(sessions)} sessions")
    prefixes: list[np.ndarray] = []
    targets: list[int] = []
    rows: list[np.ndarray] = []
    for i, s in enumerate(sessions):
        for t in range(1, len(s)):
            prefixes.append(s[:t])
            targets.append(int(s[t]))
        if contexts is not None and len(s) > 1:
            if len(contexts[i]) != len(s):
                raise ValueError(f"session {i}: {len(contexts[i])} context rows, {len(s)} items")
            rows.append(contexts[i][1:])
    context = None
    if contexts is not None:
        width = contexts[0].shape[1] if len(contexts) else 0
        context = np.concatenate(rows) if rows else np.zeros((0, width), np.float32)
    return from_prefixes(prefixes, np.array(targets, dtype=np.int64), context)


def split_tail(
    sessions: Sequence[np.ndarray], tail_fraction: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Head/tail by file order: the tail plays the role of 'later' sessions (validation)."""
    cut = int(round(len(sessions) * (1.0 - tail_fraction)))
    return list(sessions[:cut]), list(sessions[cut:])


def query_matrix(
    q: Queries, n_items: int, weight: Callable[[np.ndarray], np.ndarray], max_steps: int = 0
) -> sp.csr_matrix:
    """Queries x items matrix of recency weights ``weight(steps_from_end)`` (repeats summed)."""
    steps = q.steps_from_end
    keep = steps <= max_steps if max_steps > 0 else np.ones(len(steps), dtype=bool)
    w = weight(steps[keep]).astype(np.float64)
    m = sp.csr_matrix((w, (q.row_of_item[keep], q.items[keep])), shape=(len(q), n_items))
    m.sum_duplicates()
    return m


def topk_per_row(m: sp.csr_matrix, k: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Keep the k largest entries of each row; also return the kept positions of m.data.

    Assumes canonical CSR (sorted, no duplicates). The positions let a caller keep the
    same entries of another matrix with an identical sparsity pattern.
    """
    counts = np.diff(m.indptr)
    if counts.size == 0 or counts.max() <= k:
        return m, np.arange(m.nnz)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    order = np.lexsort((-m.data, rows))
    rank = np.arange(m.nnz) - m.indptr[rows[order]]
    keep = np.sort(order[rank < k])
    new_counts = np.bincount(rows[keep], minlength=m.shape[0])
    indptr = np.zeros(m.shape[0] + 1, dtype=np.int64)
    np.cumsum(new_counts, out=indptr[1:])
    out = sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)
    return out, keep


def canonical(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m)
    m.sum_duplicates()
    m.sort_indices()
    return m


def row_rank(m: sp.csr_matrix) -> np.ndarray:
    """Rank (1 = best) of each stored entry within its row, aligned with m.data."""
    counts = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    order = np.lexsort((-m.data, rows))
    rank = np.empty(m.nnz, dtype=np.float32)
    rank[order] = np.arange(m.nnz) - m.indptr[rows[order]] + 1
    return rank


def row_max(m: sp.csr_matrix) -> np.ndarray:
    out = np.zeros(m.shape[0])
    nz = np.diff(m.indptr) > 0
    if m.nnz:
        out[nz] = np.maximum.reduceat(m.data, m.indptr[:-1][nz])
    return out


def lookup(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Values m[rows[i], cols[i]] (0 when absent) without densifying; m canonical CSR."""
    n_cols = np.int64(m.shape[1])
    keys = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * n_cols
    keys += m.indices
    want = rows.astype(np.int64) * n_cols + cols
    pos = np.searchsorted(keys, want)
    pos = np.minimum(pos, max(len(keys) - 1, 0))
    out = np.zeros(len(want), dtype=np.float64)
    if len(keys):
        hit = keys[pos] == want
        out[hit] = m.data[pos[hit]]
    return out
