"""Second-tier features for every (session, candidate) pair, fully vectorised.

WHY these: the ranker must learn how much to trust each source for this session (scores,
in-row normalised scores and ranks, so values stay comparable when the sources are refit
on more data), whether the candidate is a repeat (where and how often it is in the
session: 20% of next items are), how strongly it follows the very last item, and how
popular it is overall and lately; what the sequence model of the session's order says of
it (its score, that score against the best item's, its rank among all items and among
the candidates: NaN when the model has no sequence model); then who is shopping (the
user's feature-store row, see ``shopper_features``: activity, and whether the candidate
is in their favourite category). Missing values are NaN (XGBoost learns a direction).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from flashrec.recsys.candidates import MATRIX_SOURCES, CandidateGenerator, Candidates
from flashrec.recsys.data import Queries, lookup, row_max, row_rank
from flashrec.recsys.shopper_features import SHOPPER_FEATURE_NAMES, shopper_columns


def _per_source_names() -> list[str]:
    names: list[str] = []
    for s in MATRIX_SOURCES:
        names += [f"{s}_score", f"{s}_norm", f"{s}_rank"]
    return names


#: The sequence model's columns (all NaN for a model without one).
SEQUENCE_FEATURE_NAMES = ["seq_score", "seq_rel", "seq_rank", "seq_cand_rank"]

FEATURE_NAMES: list[str] = [
    *_per_source_names(),
    "emb_sess_cos",
    "emb_ann_rank",
    "emb_last_cos",
    "emb_last_rank",
    "sess_count",
    "sess_last_step",
    "sess_first_step",
    "q_len",
    "q_unique",
    "log_pop",
    "log_recent_pop",
    "trans_last",
    "trans_rev_last",
    "sr_last",
    "covis_last",
    "trans_prev",
    "fused_score",
    "fused_rank",
    "n_sources",
    *SEQUENCE_FEATURE_NAMES,
    *SHOPPER_FEATURE_NAMES,
]


def _lookup_with_rank(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> tuple:
    score = lookup(m, rows, cols)
    ranked = m.copy()
    ranked.data = row_rank(m).astype(np.float64)
    rank = lookup(ranked, rows, cols)
    rank[rank == 0] = np.nan
    norm = score / np.maximum(row_max(m)[rows], 1e-12)
    present = ~np.isnan(rank)
    score = np.where(present, score, np.nan)
    norm = np.where(present, norm, np.nan)
    return score, norm, rank


def _session_stats(q: Queries, n_items: int) -> tuple[np.ndarray, ...]:
    """Per distinct (query, item) of each prefix: sorted key, count, last and first step."""
    key = q.row_of_item.astype(np.int64) * n_items + q.items
    steps = q.steps_from_end
    order = np.lexsort((steps, key))
    key_s, steps_s = key[order], steps[order]
    uniq, first_idx, counts = np.unique(key_s, return_index=True, return_counts=True)
    last_step = steps_s[first_idx]  # smallest step = most recent occurrence
    first_step = steps_s[first_idx + counts - 1]
    return uniq, counts, last_step, first_step


def _sequence_columns(
    gen: CandidateGenerator, cands: Candidates, rows: np.ndarray, cols: np.ndarray
) -> list[np.ndarray]:
    """seq_score, seq_rel (score minus the row's best), seq_rank (in the model's top-K,
    NaN beyond), seq_cand_rank (among the row's candidates)."""
    if gen.sequence is None or cands.seq_states is None or cands.seq_best is None:
        return [np.full(len(rows), np.nan) for _ in SEQUENCE_FEATURE_NAMES]
    score = gen.sequence.pair_scores(cands.seq_states, rows, cols).astype(np.float64)
    inv = lookup(cands.truncated["seq"], rows, cols)
    rank = np.where(inv > 0, 1.0 / np.maximum(inv, 1e-12), np.nan)
    u = cands.union
    by_score = sp.csr_matrix((score, u.indices, u.indptr), shape=u.shape)
    return [score, score - cands.seq_best[rows], rank, row_rank(by_score).astype(np.float64)]


def build_features(
    gen: CandidateGenerator, q: Queries, cands: Candidates
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, items, X float32 [n_pairs, len(FEATURE_NAMES)]) for the batch's union."""
    u = cands.union
    rows = np.repeat(np.arange(u.shape[0]), np.diff(u.indptr))
    cols = u.indices.astype(np.int64)
    cols_out: list[np.ndarray] = []
    for name in MATRIX_SOURCES:
        cols_out += list(_lookup_with_rank(cands.full[name], rows, cols))
    vec = gen.embeddings.vectors
    cols_out.append(np.einsum("ij,ij->i", cands.session_vectors[rows], vec[cols]))
    ann_rank = cands.ann_scores.copy()
    ann_rank.data = row_rank(cands.ann_scores).astype(np.float64)
    r = lookup(ann_rank, rows, cols)
    cols_out.append(np.where(r > 0, r, np.nan))
    last = q.last_items
    cols_out.append(np.einsum("ij,ij->i", vec[last[rows]], vec[cols]))
    last_rank = cands.truncated["emb_last"].copy()
    last_rank.data = row_rank(cands.truncated["emb_last"]).astype(np.float64)
    r = lookup(last_rank, rows, cols)
    cols_out.append(np.where(r > 0, r, np.nan))
    uniq, counts, last_step, first_step = _session_stats(q, gen.n_items)
    want = rows.astype(np.int64) * gen.n_items + cols
    pos = np.minimum(np.searchsorted(uniq, want), max(len(uniq) - 1, 0))
    inside = uniq[pos] == want if len(uniq) else np.zeros(len(want), bool)
    cols_out.append(np.where(inside, counts[pos], 0).astype(np.float64))
    cols_out.append(np.where(inside, last_step[pos], np.nan))
    cols_out.append(np.where(inside, first_step[pos], np.nan))
    lengths = q.lengths
    n_unique = np.bincount(uniq // gen.n_items, minlength=len(q)) if len(uniq) else lengths
    cols_out.append(lengths[rows].astype(np.float64))
    cols_out.append(n_unique[rows].astype(np.float64))
    cols_out.append(np.log1p(gen.pop[cols]))
    cols_out.append(np.log1p(gen.recent_pop[cols]))
    trans = gen.scorers["trans"].matrix
    cols_out.append(lookup(trans, last[rows], cols))
    cols_out.append(lookup(trans, cols, last[rows]))
    cols_out.append(lookup(gen.scorers["sr"].matrix, last[rows], cols))
    cols_out.append(lookup(gen.scorers["covis"].matrix, last[rows], cols))
    prev = np.full(len(q), -1, dtype=np.int64)
    has_prev = lengths >= 2
    prev[has_prev] = q.items[q.indptr[1:][has_prev] - 2]
    tp = lookup(trans, np.maximum(prev[rows], 0), cols)
    cols_out.append(np.where(prev[rows] >= 0, tp, np.nan))
    cols_out.append(u.data.astype(np.float64))
    cols_out.append(row_rank(u).astype(np.float64))
    n_src = np.zeros(len(rows))
    for m in cands.truncated.values():
        n_src += lookup(m, rows, cols) > 0
    cols_out.append(n_src)
    cols_out += _sequence_columns(gen, cands, rows, cols)
    cols_out += shopper_columns(q.context, rows, cols, gen.categories)
    x = np.column_stack(cols_out).astype(np.float32)
    return rows, cols, x
