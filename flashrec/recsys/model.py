"""TwoTierModel: the public API (fit, recommend, batch scoring, save/load).

Tier 1 (``CandidateGenerator``) proposes a few hundred items per session; tier 2 (an
XGBoost ranker) orders them. WHY train the ranker on a tail: the ranker must see
candidate features as they look for *unseen* sessions, so tier 1 is fitted on the head
of the sessions, the ranker on pairs of the later tail (early stopping on its last
part), and tier 1 is then refitted on all sessions for serving.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp

from flashrec.recsys.ann import AnnConfig, AnnIndex
from flashrec.recsys.candidates import CandidateConfig, CandidateGenerator, source_report
from flashrec.recsys.data import Queries, expand_pairs, from_prefixes, split_tail
from flashrec.recsys.metrics import precision_mrr, topk_from_pairs
from flashrec.recsys.ranker import Ranker, RankerConfig
from flashrec.recsys.ranker_features import FEATURE_NAMES, build_features

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = "flashrec.two_tier"
ARTIFACT_VERSION = 1


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


@dataclass
class FitReport:
    validation: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    n_train_rows: int = 0


class TwoTierModel:
    def __init__(self, config: TwoTierConfig | None = None) -> None:
        self.config = config or TwoTierConfig()
        self.generator = CandidateGenerator(self.config.candidates)
        self.ranker = Ranker(self.config.ranker)
        self.n_items = 0
        self.report = FitReport()

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        sessions: Sequence[Sequence[int] | np.ndarray],
        n_items: int | None = None,
        attributes: Mapping[int, str] | None = None,
    ) -> TwoTierModel:
        """Fit both tiers from chronological sessions of integer item ids."""
        cfg = self.config
        arrays = [np.asarray(s, dtype=np.int64) for s in sessions if len(s) > 0]
        self.n_items = n_items or int(max(int(s.max()) for s in arrays)) + 1
        t0 = time.perf_counter()
        head, tail = split_tail(arrays, cfg.tail_fraction)
        cut = int(len(tail) * (1.0 - cfg.valid_fraction))
        train_q, valid_q = expand_pairs(tail[:cut]), expand_pairs(tail[cut:])
        log.info(
            "fit: %d head sessions for tier 1; ranker on %d train / %d validation pairs",
            len(head),
            len(train_q),
            len(valid_q),
        )
        head_gen = CandidateGenerator(cfg.candidates).fit(head, self.n_items, attributes)
        t1 = time.perf_counter()
        x, y, g, _, _ = self._training_rows(head_gen, train_q, sample=True)
        xv, yv, gv, rv, cv = self._training_rows(head_gen, valid_q, sample=False)
        t2 = time.perf_counter()
        log.info("ranker rows: %d train, %d validation", len(y), len(yv))
        self.ranker.fit(x, y, g, xv, yv, gv, FEATURE_NAMES)
        t3 = time.perf_counter()
        fill = np.argsort(-head_gen.pop, kind="stable")[:40]
        top = topk_from_pairs(rv, cv, self.ranker.predict(xv), len(valid_q), 20, fill)
        p, mrr = precision_mrr(top, valid_q.targets)
        self.report.validation = {"P@20": p, "MRR@20": mrr, "cases": float(len(valid_q))}
        log.info("validation (tail, tier 1 fitted on head): P@20=%.2f MRR@20=%.2f", p, mrr)
        if cfg.refit_on_all:
            self.generator = CandidateGenerator(cfg.candidates).fit(
                arrays, self.n_items, attributes
            )
        else:
            self.generator = head_gen
        t4 = time.perf_counter()
        self.report.timings = {
            "tier1_head_s": t1 - t0,
            "features_s": t2 - t1,
            "ranker_s": t3 - t2,
            "tier1_full_s": t4 - t3,
            "total_s": t4 - t0,
        }
        self.report.n_train_rows = len(y)
        return self

    def _training_rows(
        self, gen: CandidateGenerator, q: Queries, sample: bool
    ) -> tuple[np.ndarray, ...]:
        """Features and labels per batch; for training keep only cases whose target is a
        candidate (the others carry no ranking signal) and a uniform share of negatives."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        xs, ys, gs, rs, cs = [], [], [], [], []
        batches = []
        for start in range(0, len(q), cfg.batch_size):
            b = q.slice(start, min(start + cfg.batch_size, len(q)))
            cands = gen.generate(b)
            rows, cols, x = build_features(gen, b, cands)
            y = (cols == b.targets[rows]).astype(np.float32)
            if sample:
                has_pos = np.zeros(len(b), dtype=bool)
                has_pos[rows[y > 0]] = True
                keep = has_pos[rows] & ((y > 0) | (rng.random(len(rows)) < cfg.neg_rate))
                rows, cols, x, y = rows[keep], cols[keep], x[keep], y[keep]
            else:
                batches.append((cands, b.targets))
            xs.append(x), ys.append(y), gs.append(rows + start)
            rs.append(rows + start), cs.append(cols)
            log.info("features: %d/%d cases", min(start + cfg.batch_size, len(q)), len(q))
        if batches:
            self.report.candidates = source_report(batches)
        return tuple(np.concatenate(a) for a in (xs, ys, gs, rs, cs))

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
            if nonempty.any():
                bb = b if nonempty.all() else b.take(np.flatnonzero(nonempty))
                cands = self.generator.generate(bb)
                rows, cols, x = build_features(self.generator, bb, cands)
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

    def recommend_batch(self, sessions: Sequence[Sequence[int]], k: int = 20) -> np.ndarray:
        """Like ``recommend`` for many sessions at once (unknown item ids are ignored)."""
        prefixes = [self._known(s) for s in sessions]
        return self.score_batch(from_prefixes(prefixes), k)

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
        np.savez_compressed(folder / "arrays.npz", **arrays)
        self.ranker.save(folder / "ranker.json")
        manifest = {
            "format": ARTIFACT_FORMAT,
            "version": ARTIFACT_VERSION,
            "n_items": self.n_items,
            "feature_names": FEATURE_NAMES,
            "config": dataclasses.asdict(self.config),
            "report": dataclasses.asdict(self.report),
            "created_unix": time.time(),
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TwoTierModel:
        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("format") != ARTIFACT_FORMAT or manifest.get("version") != ARTIFACT_VERSION:
            raise ValueError(f"{folder}: not a {ARTIFACT_FORMAT} v{ARTIFACT_VERSION} artifact")
        if manifest["feature_names"] != FEATURE_NAMES:
            raise ValueError(f"{folder}: feature set differs from this code's; refit the model")
        config = _config_from_dict(manifest["config"])
        model = cls(config)
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
        model.ranker = Ranker.load(folder / "ranker.json", config.ranker)
        return model


def _put_csr(out: dict[str, np.ndarray], name: str, m: sp.csr_matrix) -> None:
    out[f"{name}.data"], out[f"{name}.indices"] = m.data, m.indices
    out[f"{name}.indptr"], out[f"{name}.shape"] = m.indptr, np.asarray(m.shape)


def _get_csr(a: Mapping[str, np.ndarray], name: str) -> sp.csr_matrix:
    shape = tuple(int(v) for v in a[f"{name}.shape"])
    return sp.csr_matrix(
        (a[f"{name}.data"], a[f"{name}.indices"], a[f"{name}.indptr"]), shape=shape
    )


def _config_from_dict(d: Mapping[str, Any]) -> TwoTierConfig:
    cand = dict(d["candidates"])
    cand["ann"] = AnnConfig(**cand["ann"])
    return TwoTierConfig(
        **{k: v for k, v in d.items() if k not in ("candidates", "ranker")},
        candidates=CandidateConfig(**cand),
        ranker=RankerConfig(**d["ranker"]),
    )
