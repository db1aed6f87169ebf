"""Metric correctness on hand-made cases (the numbers every comparison rests on)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from flashrec.recsys.metrics import (
    candidate_recall,
    precision_mrr,
    topk_from_pairs,
    topk_from_sparse,
)


def test_precision_and_mrr_by_hand() -> None:
    top = np.array([[5, 7, 9], [1, 2, 3], [4, 8, 6], [9, 9, 9]])
    targets = np.array([7, 1, 6, 3])
    p, mrr = precision_mrr(top, targets)
    assert p == pytest.approx(75.0)  # 3 of 4 found
    assert mrr == pytest.approx((1 / 2 + 1 + 1 / 3 + 0) / 4 * 100)


def test_empty_slots_never_match() -> None:
    p, mrr = precision_mrr(np.array([[-1, -1]]), np.array([3]))
    assert (p, mrr) == (0.0, 0.0)


def test_candidate_recall_counts_rows_with_target() -> None:
    cands = sp.csr_matrix(np.array([[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=float))
    assert candidate_recall(cands, np.array([2, 3, 0])) == pytest.approx(100 / 3)
    assert candidate_recall(cands, np.array([1, 0, 0])) == pytest.approx(200 / 3)


def test_topk_from_sparse_orders_and_pads_without_duplicates() -> None:
    scores = sp.csr_matrix(np.array([[0, 3.0, 1.0, 0, 2.0], [0, 0, 0, 0, 0]]))
    fill = np.array([2, 0, 3, 1])
    top = topk_from_sparse(scores, 4, fill)
    assert top[0].tolist() == [1, 4, 2, 0]  # padded with the first unseen fill item
    assert top[1].tolist() == [2, 0, 3, 1]


def test_topk_from_pairs_handles_negative_scores() -> None:
    top = topk_from_pairs(
        np.array([0, 0, 1]),
        np.array([3, 4, 1]),
        np.array([-2.0, -1.0, 0.0]),
        2,
        2,
        np.array([0, 1]),
    )
    assert top.tolist() == [[4, 3], [1, 0]]
