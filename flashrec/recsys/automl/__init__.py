"""AutoML over the two-tier recommender's ranker (Optuna + XGBoost).

WHY a package of small modules: the search space, the train/validation matrices, the
objective, the persistent study, the Pareto fronts and the plots change for different
reasons (a new feature, a new pruner, a new chart) and are tested apart. The Dagster asset
calls ``run_automl`` (pipeline.py) and attaches the returned plot paths as metadata.
Names are imported lazily so ``flashrec.recsys.automl.rows`` (used by model.py's
training) does not pull Optuna and matplotlib into serving processes.
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
    "ranking_rows": "rows",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
