"""One trial: train the ranker on cached matrices, measure quality and scoring cost.

WHY xgb.train here rather than ``Ranker.fit``: multi-fidelity pruning needs a callback
that reports the validation metric every few boosting rounds, and ``Ranker.fit`` takes
no callbacks. Everything else is the same (``RankerConfig.params()``, num_rounds, early
stopping on the validation tail, map@20 as eval metric), and the booster is wrapped in
a ``Ranker`` so predictions use the same best-iteration logic as serving.

WHY time predict for the cost: trees x depth only approximate it (early-stopped tree
count, actual leaf depths, feature count); the surge capacity is what predict costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import xgboost as xgb

from flashrec.recsys.automl.data import RankingData
from flashrec.recsys.automl.space import (
    NoFeaturesError,
    SearchSpace,
    TrialConfig,
    config_from_params,
)
from flashrec.recsys.ranker import Ranker

#: Rows timed for the scoring cost (fixed per study so trials compare on the same input).
COST_SAMPLE_ROWS = 20_000
COST_REPEATS = 5


class PruningCallback(xgb.callback.TrainingCallback):
    """Reports the validation metric every ``every`` rounds; stops a pruned trial."""

    def __init__(self, trial: optuna.Trial, every: int, metric: str = "map@20") -> None:
        self.trial, self.every, self.metric = trial, max(1, every), metric

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        step = epoch + 1
        if step % self.every:
            return False
        history = evals_log.get("valid", {}).get(self.metric)
        if not history:
            return False
        self.trial.report(float(history[-1]), step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after {step} boosting rounds")
        return False


@dataclass(frozen=True)
class TrialResult:
    """Quality and cost of one trained ranker."""

    p_at_20: float
    mrr_at_20: float
    n_trees: int
    max_depth: int
    n_features: int
    cost_ms_per_1k: float
    train_s: float

    @property
    def throughput_per_s(self) -> float:
        """Candidates scored per second on one core (1000 / cost_ms * 1000)."""
        return 1e6 / max(self.cost_ms_per_1k, 1e-9)

    def attrs(self) -> dict[str, Any]:
        return {
            "P@20": self.p_at_20,
            "MRR@20": self.mrr_at_20,
            "n_trees": self.n_trees,
            "max_depth": self.max_depth,
            "n_features": self.n_features,
            "cost_ms_per_1k": self.cost_ms_per_1k,
            "train_s": self.train_s,
        }


def train_ranker(
    data: RankingData, tc: TrialConfig, callbacks: list[xgb.callback.TrainingCallback] | None = None
) -> Ranker:
    """Train on the trial's columns with early stopping on the validation tail."""
    cols = tc.columns
    dtrain = xgb.DMatrix(
        data.x_train[:, cols],
        label=data.y_train,
        qid=data.qid_train,
        feature_names=tc.feature_names,
    )
    dvalid = xgb.DMatrix(
        data.x_valid[:, cols],
        label=data.y_valid,
        qid=data.qid_valid,
        feature_names=tc.feature_names,
    )
    cfg = tc.ranker
    booster = xgb.train(
        tc.xgb_params(),
        dtrain,
        num_boost_round=cfg.num_rounds,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=cfg.early_stopping,
        verbose_eval=False,
        callbacks=callbacks,
    )
    ranker = Ranker(cfg)
    ranker.booster = booster
    return ranker


def scoring_cost_ms_per_1k(ranker: Ranker, x: np.ndarray, repeats: int = COST_REPEATS) -> float:
    """Best-of-``repeats`` wall time of predicting ``x`` per 1,000 candidates, one thread.

    Timed with ``inplace_predict`` over the trees up to the best iteration: that is the
    part that grows with trees and depth; building a DMatrix is a per-batch constant of
    the serving path whatever the model, and on a loaded machine it drowned the signal.
    One thread because the machine is shared and serving scales by processes; the best
    of a few runs removes interference from other work rather than averaging it in.
    """
    booster = ranker.booster
    assert booster is not None
    best_it = getattr(booster, "best_iteration", None)
    rng = (0, best_it + 1) if best_it is not None else (0, 0)
    x = np.ascontiguousarray(x, dtype=np.float32)
    booster.set_param({"nthread": 1})
    booster.inplace_predict(x[:100], iteration_range=rng)  # warm-up: first call allocates
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        booster.inplace_predict(x, iteration_range=rng)
        best = min(best, time.perf_counter() - t0)
    booster.set_param({"nthread": ranker.config.threads})
    return best * 1000.0 / (max(len(x), 1) / 1000.0)


def evaluate(
    data: RankingData, tc: TrialConfig, callbacks: list[xgb.callback.TrainingCallback] | None = None
) -> tuple[Ranker, TrialResult]:
    """Train, then measure validation P@20/MRR@20 and scoring cost."""
    t0 = time.perf_counter()
    ranker = train_ranker(data, tc, callbacks)
    train_s = time.perf_counter() - t0
    x_valid = data.x_valid[:, tc.columns]
    p, mrr = data.mrr_at_20(ranker.predict(x_valid))
    assert ranker.booster is not None
    best = getattr(ranker.booster, "best_iteration", None)
    n_trees = (best + 1) if best is not None else ranker.booster.num_boosted_rounds()
    cost = scoring_cost_ms_per_1k(ranker, x_valid[:COST_SAMPLE_ROWS])
    return ranker, TrialResult(
        p, mrr, int(n_trees), tc.ranker.max_depth, len(tc.columns), cost, train_s
    )


class RankerObjective:
    """Optuna objective: maximise validation MRR@20; cost and size go to user attrs.

    WHY one objective plus recorded cost (not a two-objective study): Optuna cannot prune
    multi-objective trials, and pruning is what keeps 50 trials within minutes. The
    quality/cost Pareto front is computed over the completed trials afterwards.
    """

    def __init__(
        self,
        data: RankingData,
        space: SearchSpace,
        base: TrialConfig,
        report_every: int = 10,
        prune: bool = True,
    ) -> None:
        self.data, self.space, self.base = data, space, base
        self.report_every, self.prune = report_every, prune

    def __call__(self, trial: optuna.Trial) -> float:
        params = self.space.suggest(trial)
        try:
            tc = config_from_params(params, self.base.ranker, self.space.feature_names)
        except NoFeaturesError as exc:
            raise optuna.TrialPruned(str(exc)) from exc
        callbacks = [PruningCallback(trial, self.report_every)] if self.prune else None
        _, result = evaluate(self.data, tc, callbacks)
        for k, v in result.attrs().items():
            trial.set_user_attr(k, v)
        trial.set_user_attr("emb_dim", self.data.emb_dim)
        return result.mrr_at_20
