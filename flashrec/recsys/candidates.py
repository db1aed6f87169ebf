"""First tier: merge several cheap candidate sources into one short list per session.

WHY: ranking all items with a learned model is too slow, and no single source finds most
next items. The union of session items (repeats), transitions, sequential rules,
co-visitation, session-kNN, embedding ANN, popularity and, when the model has one, the
sequence model's top-K (its session state searched against its item table in FAISS) is
what the ranker sees, so its recall is the ceiling of the whole model; ``source_report``
measures each source's part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from flashrec.recsys.ann import AnnConfig, AnnIndex
from flashrec.recsys.baselines import VSKNN, item_counts
from flashrec.recsys.covisit import AssociationScorer, covisitation, sequential_rules, transitions
from flashrec.recsys.data import Queries, canonical, query_matrix, topk_per_row
from flashrec.recsys.embeddings import PMIEmbeddings
from flashrec.recsys.metrics import candidate_recall
from flashrec.recsys.shopper_features import ItemCategories

if TYPE_CHECKING:  # the sequence model imports JAX: only models that hold one load it
    from flashrec.recsys.sequence.model import SequenceModel

log = logging.getLogger(__name__)

#: Sources scored as full sparse matrices (looked up for features even when truncated).
MATRIX_SOURCES = ("trans", "sr", "covis", "sknn")
SOURCES = ("session", *MATRIX_SOURCES, "emb", "emb_last", "pop", "seq")


@dataclass
class CandidateConfig:
    budgets: dict[str, int] = field(
        default_factory=lambda: {
            "trans": 50,
            "sr": 100,
            "covis": 50,
            "sknn": 100,
            "emb": 50,
            "emb_last": 30,
            "pop": 20,
        }
    )
    max_candidates: int = 0  # 0 keeps the whole union
    emb_dim: int = 64
    ann: AnnConfig = field(default_factory=AnnConfig)
    sknn_k: int = 100
    recent_fraction: float = 0.1  # share of the latest sessions used for 'recent' popularity


@dataclass
class Candidates:
    """One batch: the merged list (data = fused reciprocal-rank score) and source scores."""

    union: sp.csr_matrix
    full: dict[str, sp.csr_matrix]  # untruncated scores per matrix source
    truncated: dict[str, sp.csr_matrix]  # what each source contributed
    session_vectors: np.ndarray
    ann_scores: sp.csr_matrix
    # The sequence model's session states (n, dim) and each row's best score over all
    # items; None when the model has no sequence model.
    seq_states: np.ndarray | None = None
    seq_best: np.ndarray | None = None


class CandidateGenerator:
    def __init__(self, config: CandidateConfig | None = None) -> None:
        self.config = config or CandidateConfig()
        self.n_items = 0
        self.scorers: dict[str, AssociationScorer | VSKNN] = {}
        self.embeddings = PMIEmbeddings(dim=self.config.emb_dim)
        self.ann: AnnIndex | None = None
        self.pop = np.zeros(0)
        self.recent_pop = np.zeros(0)
        # Item categories: cold-item embeddings read them, and so does the ranker's
        # "candidate in the shopper's top category" feature.
        self.categories = ItemCategories()
        # Set by the two-tier model that owns it (fitted apart, on the same sessions).
        self.sequence: SequenceModel | None = None

    def fit(
        self,
        sessions: Sequence[np.ndarray],
        n_items: int,
        attributes: Mapping[int, str] | None = None,
    ) -> CandidateGenerator:
        cfg = self.config
        self.n_items = n_items
        self.categories = ItemCategories.from_attributes(attributes, n_items)
        self.scorers = {
            "trans": transitions().fit(sessions, n_items),
            "sr": sequential_rules().fit(sessions, n_items),
            "covis": covisitation().fit(sessions, n_items),
            "sknn": VSKNN(k=cfg.sknn_k).fit(sessions, n_items),
        }
        log.info("fitted association and session-kNN sources on %d sessions", len(sessions))
        self.embeddings = PMIEmbeddings(dim=cfg.emb_dim).fit(sessions, n_items, attributes)
        self.ann = AnnIndex(self.embeddings.vectors, cfg.ann)
        log.info("fitted %d-d PMI-SVD embeddings and a %s index", cfg.emb_dim, cfg.ann.kind)
        self.pop = item_counts(sessions, n_items)
        recent = sessions[int(len(sessions) * (1 - cfg.recent_fraction)) :]
        self.recent_pop = item_counts(recent, n_items)
        return self

    def fit_from_arrays(
        self,
        a: Mapping[str, np.ndarray],
        n_items: int,
        get_csr: Callable[[Mapping[str, np.ndarray], str], sp.csr_matrix],
    ) -> CandidateGenerator:
        """Restore fitted state saved by ``TwoTierModel.save`` (the ANN index is set apart)."""
        self.n_items = n_items
        self.pop, self.recent_pop = a["pop"], a["recent_pop"]
        self.categories = ItemCategories(
            tuple(str(name) for name in a["category_names"]), a["item_category"]
        )
        self.embeddings.vectors = a["vectors"]
        self.scorers = {
            "trans": transitions(),
            "sr": sequential_rules(),
            "covis": covisitation(),
        }
        for name in ("trans", "sr", "covis"):
            self.scorers[name].matrix = get_csr(a, name)  # type: ignore[union-attr]
        sknn = VSKNN(k=self.config.sknn_k, n_items=n_items)
        sknn.session_items = get_csr(a, "sknn_session_items")
        sknn.item_sessions = get_csr(a, "sknn_item_sessions")
        sknn.idf = a["sknn_idf"]
        self.scorers["sknn"] = sknn
        return self

    def generate(self, q: Queries) -> Candidates:
        cfg, n = self.config, len(q)
        full: dict[str, sp.csr_matrix] = {}
        trunc: dict[str, sp.csr_matrix] = {}
        # Session items: score = recency (1 for the last item), so repeats rank first.
        sess = query_matrix(q, self.n_items, lambda s: 1.0 / s)
        trunc["session"] = sess
        for name in MATRIX_SOURCES:
            full[name] = self.scorers[name].score(q)
            trunc[name], _ = topk_per_row(full[name], cfg.budgets[name])
        # Embedding neighbours of the whole (recency-weighted) session and of its last item.
        vecs = self.embeddings.session_vectors(q)
        ann = self._ann_matrix(vecs, cfg.budgets["emb"])
        trunc["emb"] = ann
        last_vecs = self.embeddings.vectors[np.maximum(q.last_items, 0)]
        trunc["emb_last"] = self._ann_matrix(last_vecs, cfg.budgets["emb_last"])
        top_pop = np.argsort(-self.recent_pop, kind="stable")[: cfg.budgets["pop"]]
        trunc["pop"] = canonical(
            sp.csr_matrix(
                (
                    np.tile(self.recent_pop[top_pop] + 1.0, n),
                    (np.repeat(np.arange(n), len(top_pop)), np.tile(top_pop, n)),
                ),
                shape=(n, self.n_items),
            )
        )
        seq_states = seq_best = None
        if self.sequence is not None and self.sequence.config.candidates > 0:
            seq_states = self.sequence.states(q)
            trunc["seq"], seq_best = self._seq_matrix(seq_states, self.sequence.config.candidates)
        union = self._fuse(trunc)
        if cfg.max_candidates > 0:
            union, _ = topk_per_row(union, cfg.max_candidates)
        return Candidates(union, full, trunc, vecs, ann, seq_states, seq_best)

    def _seq_matrix(self, states: np.ndarray, k: int) -> tuple[sp.csr_matrix, np.ndarray]:
        """The sequence model's top ``k`` per row, stored as 1/rank (its raw scores may be
        negative, and sources must store positive values); and each row's best score."""
        assert self.sequence is not None
        n = len(states)
        scores, ids = self.sequence.search(states, k)
        k = ids.shape[1]
        ok = ids >= 0
        rank = np.tile(np.arange(1, k + 1, dtype=np.float64), (n, 1))
        m = sp.csr_matrix(
            (1.0 / rank[ok], (np.repeat(np.arange(n), k)[ok.ravel()], ids[ok])),
            shape=(n, self.n_items),
        )
        best = scores[:, 0] if k else np.zeros(n, np.float32)
        return canonical(m), best

    def _ann_matrix(self, vecs: np.ndarray, k: int) -> sp.csr_matrix:
        assert self.ann is not None
        n = len(vecs)
        sims, ids = self.ann.search(vecs, k)
        ok = ids >= 0
        return canonical(
            sp.csr_matrix(
                (np.maximum(sims[ok], 1e-6), (np.repeat(np.arange(n), k)[ok.ravel()], ids[ok])),
                shape=(n, self.n_items),
            )
        )

    @staticmethod
    def _fuse(trunc: Mapping[str, sp.csr_matrix]) -> sp.csr_matrix:
        """Reciprocal-rank fusion: sum over sources of 1 / (10 + rank in the source)."""
        from flashrec.recsys.data import row_rank

        total: sp.csr_matrix | None = None
        for m in trunc.values():
            r = m.copy()
            r.data = 1.0 / (10.0 + row_rank(m))
            total = r if total is None else total + r
        assert total is not None
        return canonical(total)


def source_report(
    batches: Sequence[tuple[Candidates, np.ndarray]], cutoffs: Sequence[int] = (50, 100, 200)
) -> dict[str, float]:
    """Candidate recall@N (by fused rank), whole-union recall and size, per-source recall
    and each source's unique hits (targets no other source found), all x100."""
    out: dict[str, float] = {}
    n_total = sum(len(t) for _, t in batches)
    if n_total == 0:
        return out

    def weighted(values: list[float]) -> float:
        return sum(v * len(t) for v, (_, t) in zip(values, batches, strict=True)) / n_total

    for c in cutoffs:
        out[f"recall@{c}"] = weighted(
            [candidate_recall(topk_per_row(b.union, c)[0], t) for b, t in batches]
        )
    out["recall@all"] = weighted([candidate_recall(b.union, t) for b, t in batches])
    out["mean_candidates"] = sum(b.union.nnz for b, _ in batches) / n_total
    present = [s for s in SOURCES if all(s in b.truncated for b, _ in batches)]
    for name in present:
        out[f"{name}.recall"] = weighted(
            [candidate_recall(b.truncated[name], t) for b, t in batches]
        )
        uniq = []
        for b, t in batches:
            hits = {s: _hit(b.truncated[s], t) for s in present}
            others = np.zeros(len(t), dtype=bool)
            for s in present:
                if s != name:
                    others |= hits[s]
            uniq.append(float((hits[name] & ~others).mean() * 100) if len(t) else 0.0)
        out[f"{name}.unique"] = weighted(uniq)
    return out


def _hit(m: sp.csr_matrix, targets: np.ndarray) -> np.ndarray:
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    hit = np.zeros(m.shape[0], dtype=bool)
    hit[rows[m.indices == targets[rows]]] = True
    return hit
