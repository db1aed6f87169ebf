"""Second tier: an XGBoost learning-to-rank model over candidate features.

WHY grouped ranking: only the order of candidates within one session matters, so a
pairwise (or NDCG) objective per request fits the metric better than pointwise scores.
Early stopping on held-out later sessions picks the number of trees without the test set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xgboost as xgb

log = logging.getLogger(__name__)


@dataclass
class RankerConfig:
    objective: str = "rank:pairwise"  # or "rank:ndcg"
    device: str = "cpu"  # "cpu" or "cuda"
    learning_rate: float = 0.15
    max_depth: int = 6
    min_child_weight: float = 5.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    max_bin: int = 128  # coarser histograms: ~same quality, faster on 2 busy cores
    num_rounds: int = 300
    early_stopping: int = 30
    threads: int = 2
    seed: int = 42
    # Groups of feature names allowed to interact in one tree branch (XGBoost maps the
    # names to columns); empty: no constraint. Names, not indices, so a saved config stays
    # right whatever feature subset the model keeps.
    interaction_constraints: list[list[str]] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    def params(self) -> dict[str, object]:
        constraints = (
            {"interaction_constraints": [list(s) for s in self.interaction_constraints]}
            if self.interaction_constraints
            else {}
        )
        return {
            "objective": self.objective,
            "device": self.device,
            "tree_method": "hist",
            "eta": self.learning_rate,
            "max_depth": self.max_depth,
            "max_bin": self.max_bin,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "eval_metric": "map@20",  # = MRR@20 with one relevant item,
            "nthread": self.threads,
            "seed": self.seed,
            **constraints,
            **self.extra,
        }


class Ranker:
    def __init__(self, config: RankerConfig | None = None) -> None:
        self.config = config or RankerConfig()
        self.booster: xgb.Booster | None = None

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        qid: np.ndarray,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        qid_val: np.ndarray | None = None,
        feature_names: list[str] | None = None,
    ) -> Ranker:
        """qid must be non-decreasing (rows of one request contiguous)."""
        dtrain = xgb.DMatrix(x, label=y, qid=qid, feature_names=feature_names)
        evals: list[tuple[xgb.DMatrix, str]] = []
        if x_val is not None:
            dval = xgb.DMatrix(x_val, label=y_val, qid=qid_val, feature_names=feature_names)
            evals.append((dval, "valid"))
        cfg = self.config
        self.booster = xgb.train(
            cfg.params(),
            dtrain,
            num_boost_round=cfg.num_rounds,
            evals=evals,
            early_stopping_rounds=cfg.early_stopping if x_val is not None else None,
            verbose_eval=50,
        )
        log.info(
            "ranker: %d trees (best iteration %s)",
            self.booster.num_boosted_rounds(),
            getattr(self.booster, "best_iteration", None),
        )
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("ranker is not fitted")
        d = xgb.DMatrix(x, feature_names=self.booster.feature_names)
        best = getattr(self.booster, "best_iteration", None)
        rng = (0, best + 1) if best is not None else (0, 0)
        return self.booster.predict(d, iteration_range=rng)

    def save(self, path: Path) -> None:
        if self.booster is None:
            raise RuntimeError("ranker is not fitted")
        self.booster.save_model(str(path))

    @classmethod
    def load(cls, path: Path, config: RankerConfig | None = None) -> Ranker:
        r = cls(config)
        r.booster = xgb.Booster()
        r.booster.load_model(str(path))
        r.booster.set_param({"nthread": r.config.threads})
        return r

    def importance(self) -> dict[str, float]:
        if self.booster is None:
            return {}
        return self.booster.get_score(importance_type="total_gain")
