"""Item-to-item association matrices from sessions: transitions, sequential rules and
symmetric co-visitation, plus recency-weighted scoring of a session with them.

WHY several: they capture different signals (what comes right after, what comes later
in the same session, what is viewed together) and each adds candidates the others miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from flashrec.recsys.data import Queries, canonical, flatten_sessions, query_matrix, topk_per_row


def pair_matrix(
    sessions: Sequence[np.ndarray],
    n_items: int,
    max_distance: int,
    forward: bool = True,
    backward: bool = False,
    distance_decay: str = "inverse",
) -> sp.csr_matrix:
    """Item x item weights summed over same-session pairs at distance 1..max_distance."""
    items, sid = flatten_sessions(sessions)
    rows, cols, vals = [], [], []
    for d in range(1, max_distance + 1):
        same = sid[:-d] == sid[d:]
        a, b = items[:-d][same], items[d:][same]
        w = 1.0 / d if distance_decay == "inverse" else 1.0
        if forward:
            rows.append(a), cols.append(b), vals.append(np.full(len(a), w))
        if backward:
            rows.append(b), cols.append(a), vals.append(np.full(len(a), w))
    m = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
    )
    return canonical(m)


@dataclass
class AssociationScorer:
    """Score a session as sum_i decay(step_i) * M[item_i, :] over its last items."""

    max_distance: int = 1
    forward: bool = True
    backward: bool = False
    last_items: int = 10
    decay: float = 0.7
    top_per_item: int = 200
    normalize: bool = False
    matrix: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))

    def fit(self, sessions: Sequence[np.ndarray], n_items: int) -> AssociationScorer:
        m = pair_matrix(sessions, n_items, self.max_distance, self.forward, self.backward)
        if self.normalize:  # confidence-like: divide by the source item's total mass
            tot = np.asarray(m.sum(axis=1)).ravel()
            m = canonical(sp.diags(1.0 / np.maximum(tot, 1.0)) @ m)
        self.matrix, _ = topk_per_row(m, self.top_per_item)
        return self

    def score(self, q: Queries) -> sp.csr_matrix:
        w = query_matrix(
            q, self.matrix.shape[0], lambda s: self.decay ** (s - 1.0), self.last_items
        )
        return canonical(w @ self.matrix)


def transitions(**kw: object) -> AssociationScorer:
    """Next-item transitions (distance 1), last 10 items, decay 0.7."""
    return AssociationScorer(max_distance=1, last_items=10, decay=0.7, **kw)  # type: ignore[arg-type]


def sequential_rules(**kw: object) -> AssociationScorer:
    """Forward pairs within 10 steps weighted 1/distance; last 5 items, decay 0.5."""
    args = {"max_distance": 10, "last_items": 5, "decay": 0.5} | kw
    return AssociationScorer(**args)  # type: ignore[arg-type]


def covisitation(**kw: object) -> AssociationScorer:
    """Both directions within 3 steps, normalised by the source item's mass."""
    args = {
        "max_distance": 3,
        "backward": True,
        "last_items": 3,
        "decay": 0.6,
        "normalize": True,
    } | kw
    return AssociationScorer(**args)  # type: ignore[arg-type]
