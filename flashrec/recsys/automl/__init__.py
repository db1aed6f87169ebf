"""AutoML over the two-tier recommender's ranker (Optuna + XGBoost).

WHY a package of small modules: the search space, the train/validation matrices, the
objective, the persistent study, the Pareto fronts and the plots change for different
reasons (a new feature, a new pruner, a new chart) and are tested apart. The Dagster asset
calls ``run_automl`` (pipeline.py), attaches the returned plot paths as metadata and hands
the chosen trial's complete ``TwoTierConfig`` (choice.py) to the model-training asset.
Names are imported lazily so importing one module does not pull Optuna and matplotlib
into processes that only need another.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AutoMLResult": "pipeline",
    "run_automl": "pipeline",
    "NoCompletedTrialsError": "study",
    "StudyConfig": "study",
    "run_study": "study",
    "RankingDataBuilder": "data",
    "TrainingDataTooSmallError": "data",
    "best_two_tier_config": "choice",
    "two_tier_config": "choice",
    "run_sequence_study": "sequence",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
