"""The search space: ranker hyperparameters, feature groups, interaction constraints.

WHY groups instead of single features: 37 on/off switches would need far more than 50
trials; the groups follow how features are produced (one candidate source, the session,
popularity, the last item, the fused list, the sequence model, the shopper's feature-store
row), so switching one off is also a statement about which part of tier 1 (or of the
feature store) the ranker can do without. WHY interaction constraints: a
ranker whose trees may only combine features of one group (plus session context) is
more regular on small event data, and the study tells whether that costs quality.

Every trial's parameters map to a ``TrialConfig`` through ``config_from_params`` alone,
so a trial re-created from storage (best trial, warm start) trains exactly the same way.
Constraints reach XGBoost as feature *names* (``RankerConfig.interaction_constraints``), so
the deployed model, which stores its config, carries them unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from flashrec.recsys.candidates import MATRIX_SOURCES
from flashrec.recsys.ranker import RankerConfig
from flashrec.recsys.ranker_features import FEATURE_NAMES, SEQUENCE_FEATURE_NAMES
from flashrec.recsys.shopper_features import SHOPPER_FEATURE_NAMES

#: Context features that every group may interact with in the "with_context" mode.
CONTEXT_GROUPS = ("session", "fusion", "shopper")
INTERACTION_MODES = ("free", "within_group", "with_context")
OBJECTIVES = ("rank:pairwise", "rank:ndcg")


def feature_groups(names: Sequence[str] = FEATURE_NAMES) -> dict[str, list[str]]:
    """Feature names per group. A feature no rule knows lands in 'other' (always on), so a
    new feature in ranker_features.py never silently disappears from the ranker."""
    rules: dict[str, tuple[str, ...]] = {
        **{s: tuple(f"{s}_{k}" for k in ("score", "norm", "rank")) for s in MATRIX_SOURCES},
        "emb": ("emb_sess_cos", "emb_ann_rank", "emb_last_cos", "emb_last_rank"),
        "session": ("sess_count", "sess_last_step", "sess_first_step", "q_len", "q_unique"),
        "popularity": ("log_pop", "log_recent_pop"),
        "last_item": ("trans_last", "trans_rev_last", "sr_last", "covis_last", "trans_prev"),
        "fusion": ("fused_score", "fused_rank", "n_sources"),
        "sequence": tuple(SEQUENCE_FEATURE_NAMES),
        "shopper": tuple(SHOPPER_FEATURE_NAMES),
    }
    out: dict[str, list[str]] = {g: [] for g in rules}
    out["other"] = []
    for name in names:
        group = next((g for g, members in rules.items() if name in members), "other")
        out[group].append(name)
    return {g: v for g, v in out.items() if v}


def toggleable_groups(names: Sequence[str] = FEATURE_NAMES) -> list[str]:
    return [g for g in feature_groups(names) if g != "other"]


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of the study. Defaults bracket RankerConfig's defaults and XGBoost's."""

    learning_rate: tuple[float, float] = (0.02, 0.4)
    max_depth: tuple[int, int] = (2, 10)
    min_child_weight: tuple[float, float] = (0.5, 100.0)
    subsample: tuple[float, float] = (0.5, 1.0)
    colsample_bytree: tuple[float, float] = (0.4, 1.0)
    reg_lambda: tuple[float, float] = (0.01, 30.0)
    objectives: tuple[str, ...] = OBJECTIVES
    interaction_modes: tuple[str, ...] = INTERACTION_MODES
    search_features: bool = True
    feature_names: tuple[str, ...] = tuple(FEATURE_NAMES)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Ask the trial for one point; returns trial.params-like values."""
        p: dict[str, Any] = {
            "objective": trial.suggest_categorical("objective", list(self.objectives)),
            "learning_rate": trial.suggest_float("learning_rate", *self.learning_rate, log=True),
            "max_depth": trial.suggest_int("max_depth", *self.max_depth),
            "min_child_weight": trial.suggest_float(
                "min_child_weight", *self.min_child_weight, log=True
            ),
            "subsample": trial.suggest_float("subsample", *self.subsample),
            "colsample_bytree": trial.suggest_float("colsample_bytree", *self.colsample_bytree),
            "reg_lambda": trial.suggest_float("reg_lambda", *self.reg_lambda, log=True),
            "interactions": trial.suggest_categorical("interactions", list(self.interaction_modes)),
        }
        if self.search_features:
            for g in toggleable_groups(self.feature_names):
                p[f"use_{g}"] = trial.suggest_categorical(f"use_{g}", [True, False])
        return p


@dataclass(frozen=True)
class TrialConfig:
    """What one trial trains: a RankerConfig (its ``interaction_constraints`` by name), the
    kept columns and the same constraints in kept-column indices (for reports)."""

    ranker: RankerConfig
    columns: list[int]  # indices into FEATURE_NAMES
    feature_names: list[str]
    groups: list[str]
    interactions: str = "free"
    constraints: list[list[int]] = field(default_factory=list)  # in kept-column indices

    def xgb_params(self) -> dict[str, object]:
        return self.ranker.params()


class NoFeaturesError(ValueError):
    """Every feature group switched off: nothing to rank with."""


def config_from_params(
    params: Mapping[str, Any],
    base: RankerConfig | None = None,
    feature_names: Sequence[str] = FEATURE_NAMES,
) -> TrialConfig:
    """Build the trial's config; unknown/missing keys keep ``base`` (RankerConfig defaults)."""
    base = base or RankerConfig()
    extra = dict(base.extra)
    if "reg_lambda" in params:
        extra["lambda"] = float(params["reg_lambda"])
    ranker = dataclasses.replace(
        base,
        objective=str(params.get("objective", base.objective)),
        learning_rate=float(params.get("learning_rate", base.learning_rate)),
        max_depth=int(params.get("max_depth", base.max_depth)),
        min_child_weight=float(params.get("min_child_weight", base.min_child_weight)),
        subsample=float(params.get("subsample", base.subsample)),
        colsample_bytree=float(params.get("colsample_bytree", base.colsample_bytree)),
        extra=extra,
    )
    groups = feature_groups(feature_names)
    on = [g for g in groups if g == "other" or bool(params.get(f"use_{g}", True))]
    if not [g for g in on if g != "other"]:
        raise NoFeaturesError("every feature group is switched off")
    kept = [n for g in on for n in groups[g]]
    kept.sort(key=list(feature_names).index)  # keep FEATURE_NAMES order
    columns = [list(feature_names).index(n) for n in kept]
    mode = str(params.get("interactions", "free"))
    constraints = _constraints(mode, {g: groups[g] for g in on}, kept)
    ranker = dataclasses.replace(
        ranker, interaction_constraints=[[kept[i] for i in s] for s in constraints]
    )
    return TrialConfig(ranker, columns, kept, on, mode, constraints)


def _constraints(mode: str, groups: Mapping[str, list[str]], kept: list[str]) -> list[list[int]]:
    """Interaction sets in kept-column indices ([] = no constraint)."""
    if mode == "free":
        return []
    if mode not in INTERACTION_MODES:
        raise ValueError(f"unknown interaction mode {mode!r} ({', '.join(INTERACTION_MODES)})")
    pos = {n: i for i, n in enumerate(kept)}
    context = [pos[n] for g in CONTEXT_GROUPS if g in groups for n in groups[g]]
    sets: list[list[int]] = []
    for g, names in groups.items():
        members = [pos[n] for n in names]
        if mode == "with_context" and g not in CONTEXT_GROUPS:
            members = sorted(set(members) | set(context))
        sets.append(members)
    return sets


def default_params(feature_names: Sequence[str] = FEATURE_NAMES) -> dict[str, Any]:
    """RankerConfig's defaults as study parameters (all groups on, no constraints)."""
    base = RankerConfig()
    p: dict[str, Any] = {
        "objective": base.objective,
        "learning_rate": base.learning_rate,
        "max_depth": base.max_depth,
        "min_child_weight": base.min_child_weight,
        "subsample": base.subsample,
        "colsample_bytree": base.colsample_bytree,
        "reg_lambda": 1.0,  # XGBoost's default L2 penalty
        "interactions": "free",
    }
    p.update({f"use_{g}": True for g in toggleable_groups(feature_names)})
    return p


def xgboost_default_params(feature_names: Sequence[str] = FEATURE_NAMES) -> dict[str, Any]:
    """XGBoost's own defaults (eta 0.3, depth 6, no sampling) with RankerConfig's objective."""
    p = default_params(feature_names)
    p.update(
        learning_rate=0.3,
        max_depth=6,
        min_child_weight=1.0,
        subsample=1.0,
        colsample_bytree=1.0,
        reg_lambda=1.0,
    )
    return p
