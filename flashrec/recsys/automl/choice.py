"""A trial's answer as the configuration the platform deploys (a ``TwoTierConfig``).

WHY complete: a trial is validated with its hyperparameters *and* its feature groups, its
interaction constraints and, after the embedding study, an embedding dimension. A model
trained with the hyperparameters alone would be a configuration no trial ever measured.
The result is plain data (``TwoTierConfig.to_dict``) that the model artifact stores, so
``TwoTierModel.load`` restores the same columns and constraints and scores as validated.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import optuna

from flashrec.recsys.automl.study import StudyConfig, best_trial, trial_config
from flashrec.recsys.model import TwoTierConfig


def two_tier_config(
    params: Mapping[str, Any],
    study: StudyConfig,
    base: TwoTierConfig | None = None,
    emb_dim: int | None = None,
) -> TwoTierConfig:
    """``base`` with the trial's ranker (as the trial trained it: the study's rounds, early
    stopping and seed), kept features, interaction constraints and ``emb_dim``."""
    out = copy.deepcopy(base or TwoTierConfig())
    tc = trial_config(dict(params), study)
    out.ranker = tc.ranker
    out.feature_names = list(tc.feature_names)
    if emb_dim is not None:
        out.candidates.emb_dim = int(emb_dim)
    return out


def best_two_tier_config(
    study: optuna.Study,
    cfg: StudyConfig,
    base: TwoTierConfig | None = None,
    emb_dim: int | None = None,
) -> TwoTierConfig:
    """The best completed trial's configuration; ``NoCompletedTrialsError`` when the study
    has none (there is then nothing to deploy, and nothing is written)."""
    return two_tier_config(best_trial(study).params, cfg, base, emb_dim)
