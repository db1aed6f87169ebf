"""Embedding-dimension search: its own small study over a few dimensions.

WHY separate from the ranker study: the dimension changes tier 1 (PMI-SVD vectors, the
ANN index, the embedding candidates and features), which costs tens of seconds per value
on Diginetica, while a ranker trial costs seconds. So each dimension's matrices are built
once and cached (``RankingDataBuilder.data(dim)``), and the winner's ranker configuration
is trained on each: a handful of trials instead of refitting tier 1 inside 50 trials.
Size is the embedding table (items x dim x 4 bytes), which is what grows the ANN index
and the serving memory; the rule picks the smallest dimension within 1% of the best.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from flashrec.recsys.automl.data import RankingDataBuilder
from flashrec.recsys.automl.objective import evaluate
from flashrec.recsys.automl.pareto import Point, pareto_front, smallest_within
from flashrec.recsys.automl.space import TrialConfig

log = logging.getLogger(__name__)

DEFAULT_DIMS = (8, 16, 32, 64, 128)


@dataclass
class EmbeddingOutcome:
    dims: list[int]
    points: list[Point]  # quality = MRR@20, cost = embedding table MB
    front: list[int]
    chosen_dim: int
    loss_pct: float  # quality lost vs the best dimension, in %
    best_dim: int
    extra: dict[str, float] = field(default_factory=dict)


def table_mb(n_items: int, dim: int) -> float:
    return n_items * dim * 4 / 2**20


def run_embedding_study(
    builder: RankingDataBuilder,
    tc: TrialConfig,
    storage: optuna.storages.BaseStorage,
    study_name: str,
    dims: Sequence[int] = DEFAULT_DIMS,
    tolerance_pct: float = 1.0,
    fresh: bool = False,
) -> tuple[optuna.Study, EmbeddingOutcome]:
    """Evaluate ``tc`` on each dimension (resuming: dimensions already done are skipped)."""
    dims = sorted({int(d) for d in dims})
    if fresh and study_name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        optuna.delete_study(study_name=study_name, storage=storage)
    study = optuna.create_study(
        study_name=study_name, storage=storage, direction="maximize", load_if_exists=True
    )
    done = {int(t.params["emb_dim"]) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    todo = [d for d in dims if d not in done]
    for d in todo:
        study.enqueue_trial({"emb_dim": d})

    def objective(trial: optuna.Trial) -> float:
        dim = int(trial.suggest_categorical("emb_dim", dims))
        _, result = evaluate(builder.data(dim), tc)
        for k, v in result.attrs().items():
            trial.set_user_attr(k, v)
        trial.set_user_attr("size_mb", table_mb(builder.n_items, dim))
        log.info("emb_dim=%d: MRR@20=%.2f", dim, result.mrr_at_20)
        return result.mrr_at_20

    if todo:
        study.optimize(objective, n_trials=len(todo))
    by_dim = {
        int(t.params["emb_dim"]): float(t.value or 0.0)
        for t in study.get_trials(states=(TrialState.COMPLETE,))
        if int(t.params["emb_dim"]) in dims
    }
    got = sorted(by_dim)
    points = [Point(by_dim[d], table_mb(builder.n_items, d), f"d={d}") for d in got]
    front = pareto_front(points)
    idx, loss = smallest_within(points, tolerance_pct)
    best_dim = got[max(range(len(got)), key=lambda i: points[i].quality)]
    return study, EmbeddingOutcome(got, points, front, got[idx], loss, best_dim)
