"""Item embeddings from sessions: truncated SVD of a positive-PMI co-occurrence matrix.

WHY: co-occurrence counts only link items seen together; a low-rank factorisation also
links items with similar neighbourhoods, which finds candidates the count-based sources
miss. New items (no sessions yet) get the mean vector of known items sharing an
attribute (e.g. category), so they can be recommended from day one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from flashrec.recsys.covisit import pair_matrix
from flashrec.recsys.data import Queries, query_matrix


@dataclass
class PMIEmbeddings:
    dim: int = 64
    window: int = 3
    shift: float = 0.0  # subtract log(shift) from PMI when > 0 (SGNS-style negatives)
    seed: int = 42
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def fit(
        self,
        sessions: Sequence[np.ndarray],
        n_items: int,
        attributes: Mapping[int, str] | None = None,
    ) -> PMIEmbeddings:
        c = pair_matrix(sessions, n_items, self.window, forward=True, backward=True)
        c.setdiag(0)
        c.eliminate_zeros()
        c = c.tocoo()
        row_sum = np.asarray(c.sum(axis=1)).ravel()
        total = row_sum.sum()
        pmi = np.log(c.data * total / (row_sum[c.row] * row_sum[c.col]))
        if self.shift > 0:
            pmi -= np.log(self.shift)
        keep = pmi > 0
        ppmi = sp.csr_matrix((pmi[keep], (c.row[keep], c.col[keep])), shape=c.shape)
        k = min(self.dim, n_items - 2)
        rng = np.random.default_rng(self.seed)
        v0 = rng.standard_normal(n_items)
        u, s, _ = svds(ppmi, k=k, v0=v0)
        vec = (u * np.sqrt(s)).astype(np.float32)
        known = row_sum > 0
        if attributes:
            vec = self._content_vectors(vec, known, attributes)
        norms = np.linalg.norm(vec, axis=1, keepdims=True)
        self.vectors = vec / np.maximum(norms, 1e-12)
        return self

    @staticmethod
    def _content_vectors(
        vec: np.ndarray, known: np.ndarray, attributes: Mapping[int, str]
    ) -> np.ndarray:
        """Cold items: mean vector of the known items that share their attribute value."""
        groups: dict[str, list[int]] = {}
        for item, value in attributes.items():
            if 0 <= item < len(vec):
                groups.setdefault(value, []).append(item)
        out = vec.copy()
        for members in groups.values():
            idx = np.asarray(members)
            warm = idx[known[idx]]
            cold = idx[~known[idx]]
            if len(warm) and len(cold):
                out[cold] = vec[warm].mean(axis=0)
        return out

    def session_vectors(self, q: Queries, decay: float = 0.7, last_items: int = 10) -> np.ndarray:
        """Recency-weighted mean of the session's item vectors, unit length."""
        w = query_matrix(q, len(self.vectors), lambda s: decay ** (s - 1.0), last_items)
        out = np.asarray(w @ self.vectors, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
