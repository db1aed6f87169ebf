"""Train/validation ranking matrices built once per study and reused by every trial.

WHY build them once: tier 1 (candidate generation + features) is the slow part and does
not depend on the ranker's hyperparameters, so a trial only trains XGBoost on cached
matrices. The rows are made exactly as ``TwoTierModel.fit`` makes them: tier 1 fitted on
the head of the chronological sessions, the ranker trained on (prefix, next item) pairs
of the tail and early-stopped/validated on the tail's latest part, training cases without
their target among the candidates dropped, negatives sampled uniformly at ``neg_rate``
(both call ``flashrec.recsys.training_rows.ranking_rows``), shopper context rows attached
to the tail's cases the same way.

With a sequence model in the configuration, it is trained on the same head (or handed in
already trained there, e.g. by the sequence study) and feeds the candidates and features.

Embedding dimension only changes tier 1's embedding sources and features, so
``with_embedding_dim`` refits just the embeddings and ANN index on the cached head
generator and rebuilds the matrices: one small cache entry per dimension.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from flashrec.recsys.ann import AnnIndex
from flashrec.recsys.candidates import CandidateGenerator
from flashrec.recsys.data import Queries, expand_pairs, split_tail
from flashrec.recsys.embeddings import PMIEmbeddings
from flashrec.recsys.metrics import precision_mrr, topk_from_pairs
from flashrec.recsys.model import TwoTierConfig
from flashrec.recsys.ranker_features import FEATURE_NAMES
from flashrec.recsys.shopper_features import ItemCategories, ShopperRow, shopper_context
from flashrec.recsys.training_rows import ranking_rows

if TYPE_CHECKING:
    from flashrec.recsys.sequence.model import SequenceModel

log = logging.getLogger(__name__)

#: Below these a study would fit noise: the error says which one and how to fix it.
MIN_SESSIONS = 50
MIN_TRAIN_CASES = 30
MIN_VALID_CASES = 20


class TrainingDataTooSmallError(ValueError):
    """Too few sessions/cases to train and validate a ranker meaningfully."""


@dataclass(frozen=True)
class RankingData:
    """Everything a trial needs: grouped train/validation rows and the validation cases."""

    x_train: np.ndarray
    y_train: np.ndarray
    qid_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    qid_valid: np.ndarray
    valid_rows: np.ndarray  # validation case index of each validation row
    valid_items: np.ndarray  # candidate item of each validation row
    valid_targets: np.ndarray  # (n_valid_cases,) next items
    fill: np.ndarray  # popularity fill for short lists, as in TwoTierModel.fit
    emb_dim: int
    n_items: int
    feature_names: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))

    @property
    def n_valid_cases(self) -> int:
        return len(self.valid_targets)

    def mrr_at_20(self, scores: np.ndarray) -> tuple[float, float]:
        """(P@20, MRR@20) x100 over ALL validation cases (a target missing from the
        candidates counts as a miss), exactly as ``TwoTierModel.fit`` reports it."""
        top = topk_from_pairs(
            self.valid_rows, self.valid_items, scores, self.n_valid_cases, 20, self.fill
        )
        return precision_mrr(top, self.valid_targets)

    def subsample_train(self, fraction: float, seed: int = 0) -> RankingData:
        """Keep a random share of the training *cases* (whole groups), for low fidelity."""
        if fraction >= 1.0:
            return self
        cases = np.unique(self.qid_train)
        rng = np.random.default_rng(seed)
        keep_cases = rng.choice(cases, size=max(1, int(len(cases) * fraction)), replace=False)
        keep = np.isin(self.qid_train, keep_cases)
        return _replace(
            self,
            x_train=self.x_train[keep],
            y_train=self.y_train[keep],
            qid_train=self.qid_train[keep],
        )


def _replace(d: RankingData, **changes: np.ndarray) -> RankingData:
    out = copy.copy(d)
    for k, v in changes.items():
        object.__setattr__(out, k, v)
    return out


def _subsample_cases(q: Queries, max_cases: int | None, seed: int) -> Queries:
    """A uniform random subset of cases, kept in their original (chronological) order."""
    if max_cases is None or len(q) <= max_cases:
        return q
    rng = np.random.default_rng(seed)
    return q.take(np.sort(rng.choice(len(q), size=max_cases, replace=False)))


@dataclass
class RankingDataBuilder:
    """Fits tier 1 on the head once; builds (and caches) matrices per embedding dimension.

    ``max_train_cases``/``max_valid_cases`` bound a study's cost: a uniform random subset
    of the tail's (prefix, next item) cases, the same subset for every dimension.
    ``shopper_rows`` is aligned with ``sessions`` as in ``TwoTierModel.fit``.
    """

    sessions: Sequence[np.ndarray]
    n_items: int
    config: TwoTierConfig = field(default_factory=TwoTierConfig)
    max_train_cases: int | None = None
    max_valid_cases: int | None = None
    attributes: Mapping[int, str] | None = None
    shopper_rows: Sequence[Sequence[ShopperRow]] | None = None
    # A sequence model already trained on this builder's head (None: trained here when the
    # configuration has one).
    sequence: SequenceModel | None = None

    def __post_init__(self) -> None:
        cfg = self.config
        if self.shopper_rows is not None and len(self.shopper_rows) != len(self.sessions):
            raise ValueError("shopper_rows must be aligned with sessions")
        keep = [i for i, s in enumerate(self.sessions) if len(s) > 0]
        arrays = [np.asarray(self.sessions[i], dtype=np.int64) for i in keep]
        if len(arrays) < MIN_SESSIONS:
            raise TrainingDataTooSmallError(
                f"{len(arrays)} non-empty sessions; the AutoML study needs at least "
                f"{MIN_SESSIONS} (tier 1 on the head, the ranker on the tail)"
            )
        self.head, tail = split_tail(arrays, cfg.tail_fraction)
        cut = int(len(tail) * (1.0 - cfg.valid_fraction))
        seed = cfg.seed
        ctx = None
        if self.shopper_rows is not None:  # the same codes the generator will hold
            cats = ItemCategories.from_attributes(self.attributes, self.n_items)
            ctx = [shopper_context(self.shopper_rows[i], cats) for i in keep[len(self.head) :]]
        train = expand_pairs(tail[:cut], ctx[:cut] if ctx is not None else None)
        valid = expand_pairs(tail[cut:], ctx[cut:] if ctx is not None else None)
        self.train_q = _subsample_cases(train, self.max_train_cases, seed)
        self.valid_q = _subsample_cases(valid, self.max_valid_cases, seed + 1)
        if len(self.train_q) < MIN_TRAIN_CASES or len(self.valid_q) < MIN_VALID_CASES:
            raise TrainingDataTooSmallError(
                f"{len(self.train_q)} training / {len(self.valid_q)} validation cases in the "
                f"tail ({cfg.tail_fraction:.0%} of {len(arrays)} sessions); need at least "
                f"{MIN_TRAIN_CASES} / {MIN_VALID_CASES}: pass more (or longer) sessions"
            )
        self.generator = CandidateGenerator(copy.deepcopy(cfg.candidates)).fit(
            self.head, self.n_items, self.attributes
        )
        if self.sequence is None and cfg.sequence is not None:
            from flashrec.recsys.sequence.model import SequenceModel

            self.sequence = SequenceModel(copy.deepcopy(cfg.sequence)).fit(
                self.head, self.n_items, valid=self.valid_q
            )
        self.generator.sequence = self.sequence
        self._cache: dict[int, RankingData] = {}

    @property
    def base_dim(self) -> int:
        return self.config.candidates.emb_dim

    def data(self, emb_dim: int | None = None) -> RankingData:
        """Matrices for one embedding dimension (default: the config's), cached."""
        dim = self.base_dim if emb_dim is None else int(emb_dim)
        if dim not in self._cache:
            self._cache[dim] = self._build(self._generator_for(dim), dim)
        return self._cache[dim]

    def _generator_for(self, dim: int) -> CandidateGenerator:
        if dim == self.base_dim:
            return self.generator
        gen = copy.copy(self.generator)  # shares the fitted count-based sources
        gen.config = copy.deepcopy(self.generator.config)
        gen.config.emb_dim = dim
        gen.embeddings = PMIEmbeddings(dim=dim).fit(self.head, self.n_items, self.attributes)
        gen.ann = AnnIndex(gen.embeddings.vectors, gen.config.ann)
        return gen

    def _build(self, gen: CandidateGenerator, dim: int) -> RankingData:
        cfg = self.config
        kw = {"neg_rate": cfg.neg_rate, "batch_size": cfg.batch_size, "seed": cfg.seed}
        x, y, g, _, _ = ranking_rows(gen, self.train_q, sample=True, **kw)
        xv, yv, gv, rv, cv = ranking_rows(gen, self.valid_q, sample=False, **kw)
        if len(np.unique(g)) < MIN_TRAIN_CASES // 2:
            raise TrainingDataTooSmallError(
                f"only {len(np.unique(g))} training cases have their target among the "
                "candidates; the ranker has nothing to learn from"
            )
        log.info("ranking data dim=%d: %d train rows, %d validation rows", dim, len(y), len(yv))
        fill = np.argsort(-gen.pop, kind="stable")[:40]
        return RankingData(
            x_train=x,
            y_train=y,
            qid_train=g,
            x_valid=xv,
            y_valid=yv,
            qid_valid=gv,
            valid_rows=rv,
            valid_items=cv,
            valid_targets=self.valid_q.targets.copy(),
            fill=fill,
            emb_dim=dim,
            n_items=self.n_items,
        )
