"""Session data helpers: pair expansion without leakage, sparse top-k and lookups."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from flashrec.recsys.data import (
    canonical,
    expand_pairs,
    from_prefixes,
    lookup,
    query_matrix,
    row_rank,
    split_tail,
    topk_per_row,
)


def test_expand_pairs_uses_only_items_before_the_target() -> None:
    sessions = [np.array([1, 2, 3]), np.array([4, 5])]
    q = expand_pairs(sessions)
    assert len(q) == 3
    assert [q.prefix(i).tolist() for i in range(3)] == [[1], [1, 2], [4]]
    assert q.targets.tolist() == [2, 3, 5]
    for i in range(len(q)):  # no future leakage: the target never comes from later
        session = sessions[0] if q.prefix(i)[0] == 1 else sessions[1]
        t = len(q.prefix(i))
        assert q.targets[i] == session[t]
        assert set(q.prefix(i)) <= set(session[:t])


def test_query_helpers() -> None:
    q = from_prefixes([np.array([7, 8, 9]), np.array([3])], np.array([1, 2]))
    assert q.steps_from_end.tolist() == [3, 2, 1, 1]
    assert q.last_items.tolist() == [9, 3]
    assert q.slice(1, 2).prefix(0).tolist() == [3]
    m = query_matrix(q, 10, lambda s: 1.0 / s, max_steps=2)
    assert m[0, 7] == 0 and m[0, 8] == 0.5 and m[0, 9] == 1.0


def test_split_tail_keeps_order() -> None:
    head, tail = split_tail([np.array([i]) for i in range(10)], 0.2)
    assert [int(s[0]) for s in tail] == [8, 9] and len(head) == 8


def test_topk_per_row_rank_and_lookup() -> None:
    m = canonical(sp.csr_matrix(np.array([[0.0, 5, 1, 3], [2, 0, 0, 0]])))
    top, keep = topk_per_row(m, 2)
    assert top.toarray().tolist() == [[0, 5, 0, 3], [2, 0, 0, 0]]
    assert len(keep) == top.nnz
    assert row_rank(m).tolist() == [1, 3, 2, 1]
    got = lookup(m, np.array([0, 0, 1, 1]), np.array([1, 0, 0, 3]))
    assert got.tolist() == [5, 0, 2, 0]
