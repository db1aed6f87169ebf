"""Persistent, pruned, warm-startable Optuna studies over the ranker, and ``run_automl``.

WHY an SQLite RDB storage under ``artifacts_dir/optuna/studies.db``: a study interrupted
mid-event resumes where it stopped (same name, same storage, more trials), a retrain can
read the previous study to warm-start, and ``optuna-dashboard sqlite:///.../studies.db``
shows every trial without extra plumbing. WHY Hyperband over boosting rounds: most bad
configurations are visibly bad after a few dozen rounds, so they are stopped early and
the 50-trial budget goes to promising ones. WHY warm start: during a flash sale the data
shifts but the good region of the space barely moves; enqueuing the previous study's
best trials first means a retrain is good after a handful of trials, not fifty.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from flashrec.recsys.automl.data import RankingData
from flashrec.recsys.automl.objective import RankerObjective
from flashrec.recsys.automl.space import SearchSpace, TrialConfig, config_from_params
from flashrec.recsys.ranker import Ranker, RankerConfig
from flashrec.settings import Settings

log = logging.getLogger(__name__)


class NoCompletedTrialsError(RuntimeError):
    """A study finished without one completed trial: there is no model to promote."""


@dataclass(frozen=True)
class StudyConfig:
    """How one study runs (budget, pruning, warm start); defaults suit a 2-core machine."""

    study_name: str = "ranker"
    n_trials: int = 50
    timeout_s: float | None = None
    pruner: str = "hyperband"  # "hyperband" | "halving" | "none"
    report_every: int = 10  # boosting rounds between two reports (one fidelity step)
    min_rounds: int = 20  # smallest resource a Hyperband bracket gives a trial
    num_rounds: int | None = None  # None: RankerConfig's
    early_stopping: int | None = None  # None: RankerConfig's
    seed: int = 42
    warm_start_from: str | None = None  # previous study (same storage) to enqueue from
    warm_start_top_k: int = 5
    fresh: bool = False  # delete an existing study of this name first
    search_features: bool = True
    n_startup_trials: int = 10  # random trials before TPE models the space
    threads: int | None = None  # XGBoost threads (None: RankerConfig's)
    gc_after_trial: bool = True  # frees each trial's DMatrix copies on big data


@dataclass
class StudyOutcome:
    """What one ``run_study`` call did, and the study's best so far."""

    study_name: str
    n_run: int
    n_completed: int
    n_pruned: int
    n_failed: int
    n_enqueued: int
    wall_s: float
    best_value: float
    best_number: int
    best_params: dict[str, Any]
    best_attrs: dict[str, Any]
    values: list[float | None] = field(default_factory=list)  # this run's trials, in order

    @property
    def pruned_share(self) -> float:
        return self.n_pruned / max(self.n_run, 1)

    def trials_to_reach(self, target: float) -> int | None:
        """1-based count of this run's trials until one reached ``target`` (None: never)."""
        for i, v in enumerate(self.values, start=1):
            if v is not None and v >= target:
                return i
        return None


def storage_path(settings: Settings) -> Path:
    return settings.artifacts_dir / "optuna" / "studies.db"


def open_storage(path: Path) -> optuna.storages.RDBStorage:
    """SQLite RDB storage (created on first use); a long lock timeout because a dashboard
    or a second process may read it while trials are written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(
        f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 60}}
    )


def make_pruner(cfg: StudyConfig, max_rounds: int) -> optuna.pruners.BasePruner:
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=cfg.min_rounds, max_resource=max_rounds, reduction_factor=3
        )
    if cfg.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=cfg.min_rounds, reduction_factor=3
        )
    if cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {cfg.pruner!r} (hyperband, halving, none)")


def open_study(
    storage: optuna.storages.BaseStorage, cfg: StudyConfig, max_rounds: int
) -> optuna.Study:
    """Create or resume the study (``fresh`` deletes an old one of the same name)."""
    if cfg.fresh:
        names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
        if cfg.study_name in names:
            optuna.delete_study(study_name=cfg.study_name, storage=storage)
    sampler = optuna.samplers.TPESampler(
        seed=cfg.seed, n_startup_trials=cfg.n_startup_trials, multivariate=True
    )
    return optuna.create_study(
        study_name=cfg.study_name,
        storage=storage,
        direction="maximize",
        sampler=sampler,
        pruner=make_pruner(cfg, max_rounds),
        load_if_exists=True,
    )


def completed(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The best completed trial, or a clear error instead of an empty/partial model."""
    done = completed(study)
    if not done:
        states = [t.state.name for t in study.get_trials(deepcopy=False)]
        raise NoCompletedTrialsError(
            f"study {study.study_name!r} has no completed trial ({len(states)} trials: "
            f"{ {s: states.count(s) for s in set(states)} }); nothing can be promoted"
        )
    return max(done, key=lambda t: t.value if t.value is not None else float("-inf"))


def enqueue_warm_start(study: optuna.Study, previous: optuna.Study, top_k: int) -> int:
    """Enqueue the previous study's ``top_k`` best completed trials (best first).

    Returns how many were enqueued. Parameters the current space no longer has are
    dropped by Optuna's fixed-params mechanism; identical points are not re-enqueued.
    """
    done = sorted(completed(previous), key=lambda t: -(t.value or 0.0))[:top_k]
    for t in done:
        study.enqueue_trial(t.params, skip_if_exists=True)
    return len(done)


def run_study(
    data: RankingData,
    storage: optuna.storages.BaseStorage,
    cfg: StudyConfig,
    space: SearchSpace | None = None,
    base: RankerConfig | None = None,
) -> tuple[optuna.Study, StudyOutcome]:
    """Run ``cfg.n_trials`` more trials of the (new or resumed) study on ``data``.

    Raises ``NoCompletedTrialsError`` when the study still has no completed trial.
    """
    base = _base_ranker(cfg, base)
    space = space or SearchSpace(search_features=cfg.search_features)
    study = open_study(storage, cfg, base.num_rounds)
    first = len(study.get_trials(deepcopy=False))  # before enqueuing: they run now
    n_enqueued = 0
    if cfg.warm_start_from:
        previous = optuna.load_study(study_name=cfg.warm_start_from, storage=storage)
        n_enqueued = enqueue_warm_start(study, previous, cfg.warm_start_top_k)
    tc0 = config_from_params({}, base, space.feature_names)
    objective = RankerObjective(data, space, tc0, cfg.report_every, prune=cfg.pruner != "none")
    t0 = time.perf_counter()
    study.optimize(
        objective, n_trials=cfg.n_trials, timeout=cfg.timeout_s, gc_after_trial=cfg.gc_after_trial
    )
    wall = time.perf_counter() - t0
    ran = study.get_trials(deepcopy=False)[first:]
    best = best_trial(study)
    states = [t.state for t in ran]
    outcome = StudyOutcome(
        study_name=cfg.study_name,
        n_run=len(ran),
        n_completed=states.count(TrialState.COMPLETE),
        n_pruned=states.count(TrialState.PRUNED),
        n_failed=states.count(TrialState.FAIL),
        n_enqueued=n_enqueued,
        wall_s=wall,
        best_value=float(best.value or 0.0),
        best_number=best.number,
        best_params=dict(best.params),
        best_attrs=dict(best.user_attrs),
        values=[t.value if t.state == TrialState.COMPLETE else None for t in ran],
    )
    log.info(
        "study %s: %d trials (%d pruned) in %.0fs, best MRR@20=%.2f (#%d)",
        cfg.study_name,
        outcome.n_run,
        outcome.n_pruned,
        wall,
        outcome.best_value,
        outcome.best_number,
    )
    return study, outcome


def _base_ranker(cfg: StudyConfig, base: RankerConfig | None) -> RankerConfig:
    import dataclasses

    base = base or RankerConfig(seed=cfg.seed)
    return dataclasses.replace(
        base,
        num_rounds=cfg.num_rounds or base.num_rounds,
        early_stopping=cfg.early_stopping or base.early_stopping,
        threads=cfg.threads or base.threads,
    )


def trial_config(
    params: dict[str, Any], cfg: StudyConfig, base: RankerConfig | None = None
) -> TrialConfig:
    """The TrialConfig a stored trial trained with (for refitting the winner)."""
    return config_from_params(params, _base_ranker(cfg, base))


def refit_best(data: RankingData, study: optuna.Study, cfg: StudyConfig) -> tuple[Ranker, Any]:
    """Retrain the best trial's configuration (deterministic seed) for saving/timing."""
    from flashrec.recsys.automl.objective import evaluate

    return evaluate(data, trial_config(best_trial(study).params, cfg))


def outcomes_table(outcomes: Sequence[StudyOutcome]) -> list[str]:
    return [
        f"{o.study_name}: trials={o.n_run} pruned={o.n_pruned} enqueued={o.n_enqueued} "
        f"best={o.best_value:.2f} wall_s={o.wall_s:.0f}"
        for o in outcomes
    ]
