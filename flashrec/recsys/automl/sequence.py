"""Sequence-model search: size and training budget, pruned by epochs (multi-fidelity).

WHY its own study: a sequence trial trains a network for minutes on DIGINETICA, a ranker
trial trains XGBoost for seconds on cached matrices; mixing them would spend the ranker
study's budget on a few networks. Epochs are the fidelity: each trial reports its
validation MRR@20 (all items ranked) after every epoch and Hyperband stops those that are
behind at the same epoch, so the budget goes to promising sizes. The front is quality
against scoring cost (ms per query: the session state plus the FAISS top-K, timed on a
batch), and the rule is the ranker's: the cheapest trial within 1% of the best.
Trials are trained on the head and validated on the tail's latest cases, the same split
the two-tier model trains its ranker on, so no trial sees a validation case.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from flashrec.recsys.automl.pareto import Point, pareto_front, smallest_within
from flashrec.recsys.data import Queries, expand_pairs, split_tail
from flashrec.recsys.sequence.config import SequenceConfig
from flashrec.recsys.sequence.model import SequenceModel
from flashrec.recsys.sequence.train import EpochCallback, EpochReport

log = logging.getLogger(__name__)

COST_BATCH = 256  # queries per timed scoring call (a typical adaptive batch)


@dataclass(frozen=True)
class SequenceSpace:
    """Ranges of the study: the size of the network and its training budget."""

    dims: tuple[int, ...] = (32, 64, 128)
    layers: tuple[int, int] = (1, 3)
    heads: tuple[int, ...] = (1, 2, 4)
    max_lens: tuple[int, ...] = (10, 20, 50)
    epochs: tuple[int, int] = (2, 12)
    learning_rate: tuple[float, float] = (5e-4, 5e-3)

    def including(self, base: SequenceConfig) -> SequenceSpace:
        """This space widened to contain ``base`` (whose trial runs first)."""

        def span(r: tuple, v: float) -> tuple:
            return (min(r[0], v), max(r[1], v))

        return SequenceSpace(
            dims=tuple(sorted({*self.dims, base.dim})),
            layers=span(self.layers, base.layers),
            heads=tuple(sorted({*self.heads, base.heads})),
            max_lens=tuple(sorted({*self.max_lens, base.max_len})),
            epochs=span(self.epochs, base.epochs),
            learning_rate=span(self.learning_rate, base.learning_rate),
        )

    def suggest(self, trial: optuna.Trial, base: SequenceConfig) -> SequenceConfig:
        dim = trial.suggest_categorical("dim", list(self.dims))
        heads = trial.suggest_categorical("heads", list(self.heads))
        return dataclasses.replace(
            base,
            dim=int(dim),
            heads=int(heads) if dim % heads == 0 else 1,
            layers=trial.suggest_int("layers", *self.layers),
            max_len=int(trial.suggest_categorical("max_len", list(self.max_lens))),
            epochs=trial.suggest_int("epochs", *self.epochs),
            learning_rate=trial.suggest_float("learning_rate", *self.learning_rate, log=True),
        )


def params_of(cfg: SequenceConfig) -> dict[str, Any]:
    """A configuration as this study's parameters (to enqueue the defaults)."""
    keys = ("dim", "heads", "layers", "max_len", "epochs", "learning_rate")
    return {k: getattr(cfg, k) for k in keys}


@dataclass
class SequenceTrial:
    number: int
    config: SequenceConfig
    mrr_at_20: float
    p_at_20: float
    cost_ms_per_query: float
    fit_s: float

    def row(self) -> str:
        c = self.config
        return (
            f"#{self.number:<4} {c.dim:4d} {c.layers:6d} {c.heads:5d} {c.max_len:7d} "
            f"{c.epochs:6d} {self.mrr_at_20:7.2f} {self.p_at_20:7.2f} "
            f"{self.cost_ms_per_query:9.3f} {self.fit_s:7.1f}"
        )


TABLE_HEADER = (
    f"{'trial':<5} {'dim':>4} {'layers':>6} {'heads':>5} {'max_len':>7} {'epochs':>6} "
    f"{'MRR@20':>7} {'P@20':>7} {'ms/query':>9} {'fit_s':>7}"
)


@dataclass
class SequenceStudyOutcome:
    """The completed trials, their quality/cost front and the chosen configuration."""

    study_name: str
    trials: list[SequenceTrial]
    front: list[int]  # indices into ``trials``
    chosen: int
    best: int
    n_pruned: int
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def config(self) -> SequenceConfig:
        return self.trials[self.chosen].config

    def points(self) -> list[Point]:
        return [Point(t.mrr_at_20, t.cost_ms_per_query, f"#{t.number}") for t in self.trials]

    def table(self) -> list[str]:
        rows = [TABLE_HEADER]
        for i, t in enumerate(self.trials):
            marks = ("front " if i in self.front else "") + ("chosen" if i == self.chosen else "")
            rows.append(f"{t.row()}  {marks}".rstrip())
        return rows


def scoring_cost_ms(model: SequenceModel, q: Queries, rounds: int = 3) -> float:
    """ms per query to read the state and search the top-K (best of ``rounds``)."""
    batch = q.slice(0, min(COST_BATCH, len(q)))
    model.recommend(batch, model.config.candidates)  # compile this shape first
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        model.recommend(batch, model.config.candidates)
        best = min(best, time.perf_counter() - t0)
    return best * 1000 / max(len(batch), 1)


def split_for_study(
    sessions: Sequence[np.ndarray], tail_fraction: float = 0.1, valid_fraction: float = 0.25
) -> tuple[list[np.ndarray], Queries]:
    """(head sessions, validation cases of the tail's end): the two-tier model's split."""
    head, tail = split_tail(list(sessions), tail_fraction)
    return head, expand_pairs(tail[int(len(tail) * (1.0 - valid_fraction)) :])


def run_sequence_study(
    sessions: Sequence[np.ndarray],
    n_items: int,
    storage: optuna.storages.BaseStorage,
    study_name: str,
    n_trials: int,
    base: SequenceConfig | None = None,
    *,
    space: SequenceSpace | None = None,
    tolerance_pct: float = 1.0,
    fresh: bool = False,
    on_epoch: EpochCallback | None = None,
) -> SequenceStudyOutcome:
    """Run ``n_trials`` more trials (the first trial of a new study is ``base``)."""
    base = base or SequenceConfig()
    space = (space or SequenceSpace(epochs=(min(2, base.epochs), max(base.epochs, 2)))).including(
        base
    )
    head, valid = split_for_study(sessions)
    if fresh and study_name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        optuna.delete_study(study_name=study_name, storage=storage)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=base.seed, n_startup_trials=4),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=space.epochs[1], reduction_factor=3
        ),
    )
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial(params_of(base))

    def objective(trial: optuna.Trial) -> float:
        cfg = space.suggest(trial, base)

        def report(r: EpochReport) -> None:
            if on_epoch is not None:
                on_epoch(r)
            if r.mrr_at_20 is not None:
                trial.report(r.mrr_at_20, r.epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"epoch {r.epoch}: MRR@20 {r.mrr_at_20:.2f}")

        model = SequenceModel(cfg).fit(head, n_items, valid=valid, on_epoch=report)
        last = model.history[-1]
        trial.set_user_attr("p_at_20", float(last.p_at_20 or 0.0))
        trial.set_user_attr("fit_s", model.fit_s)
        trial.set_user_attr("cost_ms_per_query", scoring_cost_ms(model, valid))
        trial.set_user_attr("config", cfg.to_dict())
        log.info("sequence trial %d: %s MRR@20=%.2f", trial.number, params_of(cfg), last.mrr_at_20)
        return float(last.mrr_at_20 or 0.0)

    if n_trials > 0:
        study.optimize(objective, n_trials=n_trials)
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not done:
        raise RuntimeError(f"sequence study {study_name}: no completed trial")
    trials = [
        SequenceTrial(
            t.number,
            SequenceConfig(**{**t.user_attrs["config"], "device": base.device}),
            float(t.value or 0.0),
            float(t.user_attrs["p_at_20"]),
            float(t.user_attrs["cost_ms_per_query"]),
            float(t.user_attrs["fit_s"]),
        )
        for t in done
    ]
    points = [Point(t.mrr_at_20, t.cost_ms_per_query) for t in trials]
    chosen, loss = smallest_within(points, tolerance_pct)
    best = max(range(len(trials)), key=lambda i: trials[i].mrr_at_20)
    pruned = sum(t.state == TrialState.PRUNED for t in study.get_trials(deepcopy=False))
    return SequenceStudyOutcome(
        study_name, trials, pareto_front(points), chosen, best, pruned, {"loss_pct": loss}
    )
