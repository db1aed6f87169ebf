"""Persistent, pruned, warm-startable Optuna studies over the ranker.

WHY an SQLite RDB storage under ``artifacts_dir/optuna/studies.db``: a study interrupted
mid-event resumes where it stopped (same name, same storage, more trials), a retrain can
read the previous study to warm-start, and ``optuna-dashboard sqlite:///.../studies.db``
shows every trial without extra plumbing. WHY Hyperband over boosting rounds: most bad
configurations are visibly bad after a few dozen rounds, so they are stopped early and
the 50-trial budget goes to promising ones. WHY warm start: during a flash sale the data
shifts but the good region of the space barely moves; enqueuing the previous study's
best trials first means a retrain is good after a handful of trials, not fifty.

WHY one study per scored data (``StudyConfig.per_data``): a trial's value is only
comparable with values measured on the same matrices. A retrain on new data therefore
opens a new study, ``<study_name>-<fingerprint of the data>``, whose first trials are the
previous study's best parameters re-measured on the new data; "best" is judged on the
current data alone, and a retrain that completes no trial fails whatever older studies
hold. The same data again (a retried run) resumes its own study.

Why one module of ~360 lines: one Optuna study's lifecycle (storage, warm start, pruning,
selection) around one objective.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
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

    study_name: str = "ranker"  # the study; with ``per_data``, the family's prefix
    n_trials: int = 50
    timeout_s: float | None = None
    pruner: str = "hyperband"  # "hyperband" | "halving" | "none"
    report_every: int = 10  # boosting rounds between two reports (one fidelity step)
    min_rounds: int = 20  # smallest resource a Hyperband bracket gives a trial
    num_rounds: int | None = None  # None: RankerConfig's
    early_stopping: int | None = None  # None: RankerConfig's
    seed: int = 42
    # Previous study (same storage) to enqueue from; with ``per_data`` and None: the
    # family's most recently scored other study.
    warm_start_from: str | None = None
    warm_start_top_k: int = 5
    fresh: bool = False  # delete an existing study of this name first
    search_features: bool = True
    n_startup_trials: int = 10  # random trials before TPE models the space
    threads: int | None = None  # XGBoost threads (None: RankerConfig's)
    gc_after_trial: bool = True  # frees each trial's DMatrix copies on big data
    per_data: bool = False  # one study per scored data: ``<study_name>-<fingerprint>``


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
    # The study's trials in order (a resumed study: earlier runs' first); None: not completed.
    values: list[float | None] = field(default_factory=list)
    warm_started_from: str | None = None
    fingerprint: str = ""

    @property
    def pruned_share(self) -> float:
        return self.n_pruned / max(self.n_run, 1)

    def trials_to_reach(self, target: float) -> int | None:
        """1-based count of the study's trials until one reached ``target`` (None: never)."""
        for i, v in enumerate(self.values, start=1):
            if v is not None and v >= target:
                return i
        return None

    def trials_to_within(self, pct: float = 1.0) -> int | None:
        """Trials the study needed to get within ``pct``% of its final best: how fast a
        warm-started retrain converges."""
        return self.trials_to_reach(self.best_value * (1.0 - pct / 100.0))


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


def scoring_fingerprint(data: RankingData, base: RankerConfig) -> str:
    """Short hash of what a trial's value depends on besides its parameters: the matrices
    and the ranker settings every trial shares. Threads and device change how fast a
    value is measured, not the value, so they are left out."""
    h = hashlib.blake2b(digest_size=6)
    plain: dict[str, Any] = {}
    for f in dataclasses.fields(data):
        value = getattr(data, f.name)
        if isinstance(value, np.ndarray):
            arr = np.ascontiguousarray(value)
            h.update(f"{f.name}:{arr.dtype}:{arr.shape}".encode())
            h.update(memoryview(arr).cast("B"))
        else:
            plain[f.name] = value
    shared = {k: v for k, v in dataclasses.asdict(base).items() if k not in ("threads", "device")}
    h.update(json.dumps([plain, shared], sort_keys=True, default=str).encode())
    return h.hexdigest()


def study_name_for(cfg: StudyConfig, fingerprint: str) -> str:
    """The study's name: ``cfg.study_name``, suffixed by the data's fingerprint with
    ``per_data`` (so each training set gets its own study and a retried run resumes it)."""
    return f"{cfg.study_name}-{fingerprint}" if cfg.per_data else cfg.study_name


def last_completed_at(storage: optuna.storages.BaseStorage, name: str) -> datetime | None:
    """When the study's newest completed trial finished (None: it completed none)."""
    study_id = storage.get_study_id_from_name(name)
    done = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
    return max((t.datetime_complete for t in done if t.datetime_complete), default=None)


def latest_family_study(
    storage: optuna.storages.BaseStorage, family: str, exclude: str
) -> str | None:
    """The family's study, other than ``exclude``, that completed a trial most recently
    (None: none did). A study belongs to ``family`` by its ``family`` attribute (set when
    run_study creates it) or by bearing that exact name (studies from before per-data names).
    """
    members = [
        s.study_name
        for s in storage.get_all_studies()
        if s.study_name != exclude and family in (s.user_attrs.get("family"), s.study_name)
    ]
    scored = [(when, n) for n in members if (when := last_completed_at(storage, n)) is not None]
    return max(scored)[1] if scored else None


def warm_start_source(
    storage: optuna.storages.BaseStorage, cfg: StudyConfig, name: str
) -> str | None:
    """Which study a new study ``name`` enqueues from: the named one, else (``per_data``)
    the family's most recently scored other study, else none."""
    if cfg.warm_start_from or not cfg.per_data:
        return cfg.warm_start_from
    return latest_family_study(storage, cfg.study_name, exclude=name)


def open_study(
    storage: optuna.storages.BaseStorage,
    cfg: StudyConfig,
    max_rounds: int,
    name: str | None = None,
) -> optuna.Study:
    """Create or resume the study ``name`` (default ``cfg.study_name``); ``fresh`` deletes
    an old one of the same name."""
    name = name or cfg.study_name
    if cfg.fresh:
        names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
        if name in names:
            optuna.delete_study(study_name=name, storage=storage)
    sampler = optuna.samplers.TPESampler(
        seed=cfg.seed, n_startup_trials=cfg.n_startup_trials, multivariate=True
    )
    return optuna.create_study(
        study_name=name,
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
    dropped by Optuna's fixed-params mechanism; identical points are not re-enqueued
    (nor counted).
    """
    before = len(study.get_trials(deepcopy=False))
    done = sorted(completed(previous), key=lambda t: -(t.value or 0.0))[:top_k]
    for t in done:
        study.enqueue_trial(t.params, skip_if_exists=True)
    return len(study.get_trials(deepcopy=False)) - before


def begin_study(
    study: optuna.Study, storage: optuna.storages.BaseStorage, cfg: StudyConfig, fingerprint: str
) -> tuple[str | None, int]:
    """Label a new study with its family and data fingerprint (so the next retrain finds
    it) and enqueue its warm start; returns (source study or None, trials enqueued)."""
    study.set_user_attr("family", cfg.study_name)
    study.set_user_attr("fingerprint", fingerprint)
    previous = warm_start_source(storage, cfg, study.study_name)
    if previous is None:
        return None, 0
    source = optuna.load_study(study_name=previous, storage=storage)
    return previous, enqueue_warm_start(study, source, cfg.warm_start_top_k)


def run_study(
    data: RankingData,
    storage: optuna.storages.BaseStorage,
    cfg: StudyConfig,
    space: SearchSpace | None = None,
    base: RankerConfig | None = None,
) -> tuple[optuna.Study, StudyOutcome]:
    """Run ``cfg.n_trials`` more trials of the (new or resumed) study on ``data``.

    A new study first runs the warm-start source's best parameters (``warm_start_source``).
    Raises ``NoCompletedTrialsError`` when the study still has no completed trial.
    """
    base = _base_ranker(cfg, base)
    space = space or SearchSpace(search_features=cfg.search_features)
    fingerprint = scoring_fingerprint(data, base)
    name = study_name_for(cfg, fingerprint)
    study = open_study(storage, cfg, base.num_rounds, name)
    first = len(study.get_trials(deepcopy=False))  # before enqueuing: they run now
    previous, n_enqueued = None, 0
    if first == 0:  # a resumed study already ran (or queued) its warm start
        previous, n_enqueued = begin_study(study, storage, cfg, fingerprint)
    tc0 = config_from_params({}, base, space.feature_names)
    objective = RankerObjective(data, space, tc0, cfg.report_every, prune=cfg.pruner != "none")
    t0 = time.perf_counter()
    study.optimize(
        objective, n_trials=cfg.n_trials, timeout=cfg.timeout_s, gc_after_trial=cfg.gc_after_trial
    )
    wall = time.perf_counter() - t0
    trials = study.get_trials(deepcopy=False)
    ran = trials[first:]
    best = best_trial(study)
    states = [t.state for t in ran]
    outcome = StudyOutcome(
        study_name=name,
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
        values=[t.value if t.state == TrialState.COMPLETE else None for t in trials],
        warm_started_from=previous,
        fingerprint=fingerprint,
    )
    log.info(
        "study %s: %d trials (%d pruned, %d enqueued from %s) in %.0fs, best MRR@20=%.2f "
        "(#%d), within 1%% after %s trials",
        name,
        outcome.n_run,
        outcome.n_pruned,
        n_enqueued,
        previous,
        wall,
        outcome.best_value,
        outcome.best_number,
        outcome.trials_to_within(1.0),
    )
    return study, outcome


def _base_ranker(cfg: StudyConfig, base: RankerConfig | None) -> RankerConfig:
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
