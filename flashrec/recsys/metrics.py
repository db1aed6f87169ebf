"""Next-item metrics of the SR-GNN protocol: P@k (hit rate) and MRR@k, x100."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def precision_mrr(topk: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """P@k and MRR@k x100 from a (n, k) array of ranked items (-1 = empty slot)."""
    if len(targets) == 0:
        return 0.0, 0.0
    hits = topk == np.asarray(targets)[:, None]
    found = hits.any(axis=1)
    rank = hits.argmax(axis=1) + 1
    mrr = np.where(found, 1.0 / rank, 0.0)
    return float(found.mean() * 100), float(mrr.mean() * 100)


def candidate_recall(candidates: sp.csr_matrix, targets: np.ndarray) -> float:
    """Share (x100) of cases whose target is among the row's stored candidates."""
    if len(targets) == 0:
        return 0.0
    m = sp.csr_matrix(candidates)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    hit = np.zeros(m.shape[0], dtype=bool)
    match = m.indices == np.asarray(targets)[rows]
    hit[rows[match]] = True
    return float(hit.mean() * 100)


def topk_from_sparse(scores: sp.csr_matrix, k: int, fill: np.ndarray) -> np.ndarray:
    """Top-k items per row by score; rows with fewer than k scored items are padded
    with ``fill`` (e.g. items by popularity), skipping items already listed."""
    m = sp.csr_matrix(scores)
    n = m.shape[0]
    counts = np.diff(m.indptr)
    rows = np.repeat(np.arange(n), counts)
    order = np.lexsort((-m.data, rows))
    rank = np.arange(m.nnz) - m.indptr[rows[order]]
    keep = order[rank < k]
    out = np.full((n, k), -1, dtype=np.int64)
    out[rows[keep], rank[rank < k]] = m.indices[keep]
    short = np.flatnonzero(counts < k)
    fill = np.asarray(fill, dtype=np.int64)
    for r in short:
        have = int(counts[r])
        extra = fill[~np.isin(fill, out[r, :have])][: k - have]
        out[r, have : have + len(extra)] = extra
    return out


def topk_from_pairs(
    rows: np.ndarray, items: np.ndarray, scores: np.ndarray, n_rows: int, k: int, fill: np.ndarray
) -> np.ndarray:
    """Top-k items per row from scored (row, item) pairs, padded from ``fill``."""
    m = sp.csr_matrix(
        (np.asarray(scores, dtype=np.float64), (rows, items)),
        shape=(n_rows, int(max(items.max(initial=0), fill.max(initial=0))) + 1),
    )
    # Pair scores may be negative or zero: shift to strictly positive within the batch so
    # sparse storage keeps them (order within a row is unchanged).
    if m.nnz:
        m.data = m.data - m.data.min() + 1.0
    return topk_from_sparse(m, k, fill)
