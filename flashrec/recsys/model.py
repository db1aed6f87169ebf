"""TwoTierModel: the public API (fit, recommend, batch scoring, save/load).

Tier 1 (``CandidateGenerator``) proposes a few hundred items per session; tier 2 (an
XGBoost ranker) orders them. WHY train the ranker on a tail: the ranker must see
candidate features as they look for *unseen* sessions, so tier 1 is fitted on the head
of the sessions, the ranker on pairs of the later tail (early stopping on its last
part), and tier 1 is then refitted on all sessions for serving.

Shopper context: ``fit`` may take each session position's user feature row (as of just
before that event) and ``recommend_batch`` each query's current row; both become ranker
columns through ``shopper_features`` alone. ``config.feature_names`` selects the ranker's
columns (the AutoML study's choice); the selection, the interaction constraints and the
embedding dimension are saved with the artifact, so ``load`` scores exactly as trained.

Sequence model (``config.sequence``, optional): a self-attentive model of the session's
order, trained like tier 1 (on the head, so the ranker sees its scores as they look for
unseen sessions; then ``refit_epochs`` more passes over all sessions for serving). It is
a tier-1 source (its top-K through FAISS) and a group of ranker features, and with
``mode="sequence"`` the whole recommender (no ranker): the standalone challenger.

Why one module of ~450 lines: the public API of the two-tier model in one class; its parts
(candidates, ranker, features, sequence) are modules of their own.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np
import scipy.sparse as sp

from flashrec.recsys.ann import AnnConfig, AnnIndex
from flashrec.recsys.candidates import (
    CandidateConfig,
    CandidateGenerator,
    Candidates,
    source_report,
)
from flashrec.recsys.data import Queries, expand_pairs, from_prefixes, split_tail
from flashrec.recsys.metrics import precision_mrr, topk_from_pairs
from flashrec.recsys.ranker import Ranker, RankerConfig
from flashrec.recsys.ranker_features import FEATURE_NAMES, SEQUENCE_FEATURE_NAMES, build_features
from flashrec.recsys.sequence.config import SequenceConfig
from flashrec.recsys.shopper_features import ItemCategories, ShopperRow, shopper_context
from flashrec.recsys.training_rows import ranking_rows

if TYPE_CHECKING:  # JAX is imported only when a model holds a sequence model
    from flashrec.recsys.sequence.model import SequenceModel
    from flashrec.recsys.sequence.train import EpochCallback

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = "flashrec.two_tier"
ARTIFACT_VERSION = 3  # 3: sequence model, modes; 2: shopper features, feature selection
READABLE_VERSIONS = (2, 3)
#: "two_tier": candidates + ranker; "sequence": the sequence model alone (a challenger).
MODES = ("two_tier", "sequence")


@dataclass
class TwoTierConfig:
    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    tail_fraction: float = 0.1  # latest sessions that train the ranker
    valid_fraction: float = 0.25  # latest part of the tail: early stopping + validation
    # Share of negatives kept for training, drawn uniformly: choosing them by a feature
    # (e.g. "top fused ranks") teaches the ranker the sampling rule instead of relevance.
    neg_rate: float = 0.25
    batch_size: int = 4096
    seed: int = 42
    refit_on_all: bool = True  # False keeps tier 1 fitted on the head (for quick tuning runs)
    # Ranker columns, a subset of FEATURE_NAMES (e.g. the AutoML study's feature groups);
    # None: all of them (less the sequence columns when there is no sequence model).
    feature_names: list[str] | None = None
    sequence: SequenceConfig | None = None  # None: no sequence model
    mode: str = "two_tier"  # see MODES

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r} ({', '.join(MODES)})")
        if self.mode == "sequence" and self.sequence is None:
            raise ValueError("mode 'sequence' needs a sequence model configuration")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (what the artifact's manifest and Dagster carry)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TwoTierConfig:
        """Inverse of ``to_dict`` (keys missing from older dicts keep their defaults)."""
        cand = dict(d["candidates"])
        cand["ann"] = AnnConfig(**cand["ann"])
        return cls(
            **{k: v for k, v in d.items() if k not in ("candidates", "ranker", "sequence")},
            candidates=CandidateConfig(**cand),
            ranker=RankerConfig(**d["ranker"]),
            sequence=SequenceConfig.from_dict(d.get("sequence")),
        )


def selected_features(names: Sequence[str] | None, with_sequence: bool = True) -> list[str]:
    """The ranker's columns: ``names`` checked against FEATURE_NAMES (None: all of them,
    less the sequence model's unless ``with_sequence``)."""
    if names is None:
        if with_sequence:
            return list(FEATURE_NAMES)
        return [n for n in FEATURE_NAMES if n not in SEQUENCE_FEATURE_NAMES]
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(
            f"feature selection must be distinct names of FEATURE_NAMES; unknown={unknown}, "
            f"got {len(names)} names"
        )
    return list(names)


@dataclass
class FitReport:
    validation: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    n_train_rows: int = 0


class TwoTierModel:
    def __init__(self, config: TwoTierConfig | None = None) -> None:
        self.config = config or TwoTierConfig()
        self.feature_names = selected_features(
            self.config.feature_names, self.config.sequence is not None
        )
        columns = [FEATURE_NAMES.index(n) for n in self.feature_names]
        # None: every column in order (no copy of the largest arrays of a fit)
        self._columns = None if columns == list(range(len(FEATURE_NAMES))) else np.array(columns)
        self.generator = CandidateGenerator(self.config.candidates)
        self.ranker = Ranker(self.config.ranker)
        self.n_items = 0
        self.report = FitReport()
        self.sequence: SequenceModel | None = None

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        sessions: Sequence[Sequence[int] | np.ndarray],
        n_items: int | None = None,
        attributes: Mapping[int, str] | None = None,
        shopper_rows: Sequence[Sequence[ShopperRow]] | None = None,
        *,
        on_epoch: EpochCallback | None = None,
    ) -> TwoTierModel:
        """Fit both tiers (and the sequence model, if configured) from chronological
        sessions of integer item ids.

        ``shopper_rows[s][t]`` (optional): the user's feature row as of strictly before the
        event at position t of session s (None for anonymous), i.e. what serving would
        have read when that item was the next one; the ranker's shopper columns come from it.
        ``on_epoch`` sees each of the sequence model's epochs (a progress log).
        """
        cfg = self.config
        if shopper_rows is not None and len(shopper_rows) != len(sessions):
            raise ValueError(f"{len(shopper_rows)} shopper row lists for {len(sessions)} sessions")
        keep = [i for i, s in enumerate(sessions) if len(s) > 0]
        arrays = [np.asarray(sessions[i], dtype=np.int64) for i in keep]
        self.n_items = n_items or int(max(int(s.max()) for s in arrays)) + 1
        t0 = time.perf_counter()
        head, tail = split_tail(arrays, cfg.tail_fraction)
        cut = int(len(tail) * (1.0 - cfg.valid_fraction))
        contexts = None
        if shopper_rows is not None:  # only the tail trains the ranker
            cats = ItemCategories.from_attributes(attributes, self.n_items)
            contexts = [shopper_context(shopper_rows[i], cats) for i in keep[len(head) :]]
        train_q = expand_pairs(tail[:cut], contexts[:cut] if contexts is not None else None)
        valid_q = expand_pairs(tail[cut:], contexts[cut:] if contexts is not None else None)
        timings: dict[str, float] = {}
        if cfg.sequence is not None:
            from flashrec.recsys.sequence.model import SequenceModel

            log.info("sequence model on %d head sessions", len(head))
            self.sequence = SequenceModel(copy.deepcopy(cfg.sequence)).fit(
                head, self.n_items, valid=valid_q, on_epoch=on_epoch
            )
            timings["sequence_head_s"] = self.sequence.fit_s
        if cfg.mode == "sequence":
            self._validate_sequence(valid_q)
        else:
            self._fit_ranker(head, train_q, valid_q, attributes, timings)
        t3 = time.perf_counter()
        if cfg.refit_on_all or cfg.mode == "sequence":
            self.generator = CandidateGenerator(cfg.candidates).fit(
                arrays, self.n_items, attributes
            )
            if self.sequence is not None:
                before = self.sequence.fit_s
                self.sequence.train_more(arrays, cfg.sequence.refit_epochs, on_epoch=on_epoch)
                timings["sequence_all_s"] = self.sequence.fit_s - before
        self.generator.sequence = self.sequence
        t4 = time.perf_counter()
        self.report.timings = {**timings, "tier1_full_s": t4 - t3, "total_s": t4 - t0}
        return self

    def _fit_ranker(
        self,
        head: list[np.ndarray],
        train_q: Queries,
        valid_q: Queries,
        attributes: Mapping[int, str] | None,
        timings: dict[str, float],
    ) -> None:
        """Tier 1 on the head, the ranker on the tail's cases (early stopping on its end)."""
        cfg = self.config
        t0 = time.perf_counter()
        head_gen = CandidateGenerator(cfg.candidates).fit(head, self.n_items, attributes)
        head_gen.sequence = self.sequence
        t1 = time.perf_counter()
        log.info(
            "fit: %d head sessions for tier 1; ranker on %d train / %d validation pairs",
            len(head),
            len(train_q),
            len(valid_q),
        )
        kw = {"neg_rate": cfg.neg_rate, "batch_size": cfg.batch_size, "seed": cfg.seed}
        x, y, g, _, _ = ranking_rows(head_gen, train_q, sample=True, **kw)
        batches: list[tuple[Candidates, np.ndarray]] = []
        xv, yv, gv, rv, cv = ranking_rows(
            head_gen, valid_q, sample=False, on_batch=lambda c, t: batches.append((c, t)), **kw
        )
        if batches:
            self.report.candidates = source_report(batches)
        x, xv = self._select(x), self._select(xv)
        t2 = time.perf_counter()
        log.info("ranker rows: %d train, %d validation", len(y), len(yv))
        self.ranker.fit(x, y, g, xv, yv, gv, self.feature_names)
        t3 = time.perf_counter()
        fill = np.argsort(-head_gen.pop, kind="stable")[:40]
        top = topk_from_pairs(rv, cv, self.ranker.predict(xv), len(valid_q), 20, fill)
        p, mrr = precision_mrr(top, valid_q.targets)
        self.report.validation = {"P@20": p, "MRR@20": mrr, "cases": float(len(valid_q))}
        log.info("validation (tail, tier 1 fitted on head): P@20=%.2f MRR@20=%.2f", p, mrr)
        if not cfg.refit_on_all:
            self.generator = head_gen
        self.report.n_train_rows = len(y)
        timings.update(tier1_head_s=t1 - t0, features_s=t2 - t1, ranker_s=t3 - t2)

    def _validate_sequence(self, valid_q: Queries) -> None:
        """The standalone sequence model's validation figures (trained on the head)."""
        assert self.sequence is not None
        if len(valid_q):
            p, mrr = precision_mrr(self.sequence.recommend(valid_q, 20), valid_q.targets)
        else:
            p = mrr = 0.0
        self.report.validation = {"P@20": p, "MRR@20": mrr, "cases": float(len(valid_q))}
        log.info("validation (tail, sequence model fitted on head): P@20=%.2f MRR@20=%.2f", p, mrr)

    # ----------------------------------------------------------------- serving
    def score_batch(
        self, q: Queries, k: int = 20, candidate_stats: dict[str, float] | None = None
    ) -> np.ndarray:
        """(n, k) recommended item ids for a batch of session prefixes.

        With ``candidate_stats`` (and known targets) it is filled with the candidate recall
        and per-source contributions over all cases, as in ``source_report``.
        """
        fill = np.argsort(-self.generator.pop, kind="stable")[: 2 * k]
        out = []
        sums: dict[str, float] = {}
        n_reported = 0
        for start in range(0, len(q), self.config.batch_size):
            b = q.slice(start, min(start + self.config.batch_size, len(q)))
            nonempty = b.lengths > 0
            top = np.tile(fill[:k], (len(b), 1))
            if nonempty.any() and self.config.mode == "sequence":
                bb = b if nonempty.all() else b.take(np.flatnonzero(nonempty))
                top[nonempty] = self._sequence_top(bb, k, fill)
            elif nonempty.any():
                bb = b if nonempty.all() else b.take(np.flatnonzero(nonempty))
                rows, cols, x, cands = self._pairs(bb)
                pred = self.ranker.predict(x) if len(x) else np.zeros(0)
                top[nonempty] = topk_from_pairs(rows, cols, pred, len(bb), k, fill)
                if candidate_stats is not None:
                    for key, v in source_report([(cands, bb.targets)]).items():
                        sums[key] = sums.get(key, 0.0) + v * len(bb)
                    n_reported += len(bb)
            out.append(top)
            log.info("scored %d/%d cases", min(start + len(b), len(q)), len(q))
        if candidate_stats is not None and n_reported:
            candidate_stats.update({key: v / n_reported for key, v in sums.items()})
        return np.concatenate(out) if out else np.zeros((0, k), np.int64)

    def _sequence_top(self, q: Queries, k: int, fill: np.ndarray) -> np.ndarray:
        """The standalone variant: the sequence model's top ``k`` (FAISS over its items)."""
        assert self.sequence is not None
        top = self.sequence.recommend(q, k)
        short = (top < 0).any(axis=1)  # fewer items than k: pad from popularity
        for r in np.flatnonzero(short):
            have = top[r][top[r] >= 0]
            extra = fill[~np.isin(fill, have)][: k - len(have)]
            top[r] = np.concatenate([have, extra, np.full(k, -1)])[:k]
        return top

    def use_device(self, device: str) -> None:
        """Score on ``device`` ('cpu' or 'cuda'): the ranker's booster and the sequence
        model's JAX arrays (a host without CUDA support keeps the CPU, with a warning)."""
        if self.ranker.booster is not None:
            self.ranker.booster.set_param({"device": device})
        if self.sequence is not None:
            self.sequence.use_device(device)

    def _pairs(self, q: Queries) -> tuple[np.ndarray, np.ndarray, np.ndarray, Candidates]:
        """Candidates and the ranker's columns (this model's selection) for ``q``."""
        cands = self.generator.generate(q)
        rows, cols, x = build_features(self.generator, q, cands)
        return rows, cols, self._select(x), cands

    def _select(self, x: np.ndarray) -> np.ndarray:
        """The columns of this model's feature selection (all of FEATURE_NAMES: ``x``)."""
        return x if self._columns is None else x[:, self._columns]

    def queries(
        self, sessions: Sequence[Sequence[int]], shopper_rows: Sequence[ShopperRow] | None = None
    ) -> Queries:
        """Serving queries: known items of each session plus each shopper's feature row."""
        if shopper_rows is not None and len(shopper_rows) != len(sessions):
            raise ValueError(f"{len(shopper_rows)} shopper rows for {len(sessions)} sessions")
        prefixes = [self._known(s) for s in sessions]
        context = (
            None
            if shopper_rows is None
            else shopper_context(shopper_rows, self.generator.categories)
        )
        return from_prefixes(prefixes, context=context)

    def pair_features(
        self, sessions: Sequence[Sequence[int]], shopper_rows: Sequence[ShopperRow] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query, candidate, X over ``feature_names``): exactly what serving ranks."""
        rows, cols, x, _ = self._pairs(self.queries(sessions, shopper_rows))
        return rows, cols, x

    def recommend_batch(
        self,
        sessions: Sequence[Sequence[int]],
        k: int = 20,
        shopper_rows: Sequence[ShopperRow] | None = None,
    ) -> np.ndarray:
        """Like ``recommend`` for many sessions at once (unknown item ids are ignored);
        ``shopper_rows[i]`` is session i's user feature row (None: anonymous)."""
        return self.score_batch(self.queries(sessions, shopper_rows), k)

    def recommend(self, session_items: Sequence[int], k: int = 20) -> list[int]:
        """Top-k next items for one session (oldest item first)."""
        return [int(i) for i in self.recommend_batch([session_items], k)[0]]

    def _known(self, items: Sequence[int]) -> np.ndarray:
        a = np.asarray(items, dtype=np.int64)
        return a[(a >= 0) & (a < self.n_items)]

    # ----------------------------------------------------------------- artifact
    def save(self, folder: str | Path) -> Path:
        """Versioned folder: arrays.npz + ranker.json + manifest.json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        gen = self.generator
        arrays: dict[str, np.ndarray] = {
            "pop": gen.pop,
            "recent_pop": gen.recent_pop,
            "vectors": gen.embeddings.vectors,
        }
        for name in ("trans", "sr", "covis"):
            _put_csr(arrays, name, gen.scorers[name].matrix)
        sknn = gen.scorers["sknn"]
        _put_csr(arrays, "sknn_session_items", sknn.session_items)
        _put_csr(arrays, "sknn_item_sessions", sknn.item_sessions)
        arrays["sknn_idf"] = sknn.idf
        assert gen.ann is not None
        arrays["ann_index"] = faiss.serialize_index(gen.ann.index)
        arrays["item_category"] = gen.categories.of_item
        arrays["category_names"] = np.array(gen.categories.names, dtype=str)
        np.savez_compressed(folder / "arrays.npz", **arrays)
        if self.config.mode == "two_tier":
            self.ranker.save(folder / "ranker.json")
        if self.sequence is not None:
            self.sequence.save(folder / "sequence")
        manifest = {
            "format": ARTIFACT_FORMAT,
            "version": ARTIFACT_VERSION,
            "n_items": self.n_items,
            "feature_names": self.feature_names,
            "config": self.config.to_dict(),
            "report": dataclasses.asdict(self.report),
            "created_unix": time.time(),
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TwoTierModel:
        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        version = manifest.get("version")
        if manifest.get("format") != ARTIFACT_FORMAT or version not in READABLE_VERSIONS:
            raise ValueError(
                f"{folder}: not a {ARTIFACT_FORMAT} artifact of a version this code reads "
                f"({', '.join(f'v{v}' for v in READABLE_VERSIONS)}); got v{version}"
            )
        unknown = sorted(set(manifest["feature_names"]) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"{folder}: features {unknown} unknown to this code; refit the model")
        config = TwoTierConfig.from_dict(manifest["config"])
        if config.feature_names is None:  # "all" meant the features of the code that saved it
            config.feature_names = list(manifest["feature_names"])
        model = cls(config)
        if model.feature_names != manifest["feature_names"]:
            raise ValueError(f"{folder}: manifest and config disagree on the ranker's features")
        model.n_items = int(manifest["n_items"])
        model.report = FitReport(**manifest["report"])
        with np.load(folder / "arrays.npz") as z:
            a = {k: z[k] for k in z.files}
        gen = CandidateGenerator(config.candidates)
        gen.fit_from_arrays(a, model.n_items, _get_csr)
        gen.ann = AnnIndex.from_faiss(
            gen.embeddings.vectors, faiss.deserialize_index(a["ann_index"]), config.candidates.ann
        )
        model.generator = gen
        if config.sequence is not None:
            from flashrec.recsys.sequence.model import SequenceModel

            model.sequence = SequenceModel.load(folder / "sequence")
            if model.sequence.n_items != model.n_items:
                raise ValueError(f"{folder}: the sequence model knows another item count")
            gen.sequence = model.sequence
        if config.mode == "sequence":
            return model
        model.ranker = Ranker.load(folder / "ranker.json", config.ranker)
        assert model.ranker.booster is not None
        if list(model.ranker.booster.feature_names or []) != model.feature_names:
            raise ValueError(f"{folder}: the booster's features differ from the manifest's")
        return model


def _put_csr(out: dict[str, np.ndarray], name: str, m: sp.csr_matrix) -> None:
    out[f"{name}.data"], out[f"{name}.indices"] = m.data, m.indices
    out[f"{name}.indptr"], out[f"{name}.shape"] = m.indptr, np.asarray(m.shape)


def _get_csr(a: Mapping[str, np.ndarray], name: str) -> sp.csr_matrix:
    shape = tuple(int(v) for v in a[f"{name}.shape"])
    return sp.csr_matrix(
        (a[f"{name}.data"], a[f"{name}.indices"], a[f"{name}.indptr"]), shape=shape
    )
