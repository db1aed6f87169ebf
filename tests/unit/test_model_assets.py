"""The model assets in Dagster (in process, no services): the model-training asset trains
exactly the configuration the study hands it, the deployed model is that configuration
refitted on every session (the held-out newest included), and a study with no completed
trial stops the chain before any model exists, whatever older studies hold."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import optuna
import pytest

from assets.models import deployed_model, ranker_study, split_training_set, two_tier_model
from assets.resources import LakeResource
from flashrec.recsys.automl.space import SearchSpace
from flashrec.recsys.automl.study import open_storage, storage_path
from flashrec.recsys.ranker import RankerConfig
from flashrec.scoring.catalog_model import CatalogModel, training_data
from flashrec.settings import Settings
from tests import synthetic
from tests.tiny_models import tiny_two_tier


def _training_set(n_sessions: int) -> dict:
    data = training_data(synthetic.interactions(n_sessions=n_sessions))
    rows = [[{"user_views_1h": 2, "user_top_category": "c1"}] * len(s) for s in data.sessions]
    return split_training_set(data, rows)


@dg.asset(name="model_training_set")
def fake_training_set() -> dict:
    return _training_set(250)


@dg.asset(name="model_training_set")
def study_sized_training_set() -> dict:
    """Big enough for the study's own size checks, so the trial count is what fails."""
    return _training_set(600)


KEPT = ["trans_score", "trans_rank", "sess_count", "log_pop", "fused_rank", "user_views_1h"]
CONSTRAINTS = [["trans_score", "trans_rank", "fused_rank"], ["sess_count", "log_pop"]]


@dg.asset(name="sequence_model")
def no_sequence_model() -> dict:
    return {"config": None, "artifact": None}


@dg.asset(name="ranker_study")
def fake_study() -> dict:
    config = tiny_two_tier(RankerConfig(num_rounds=15, early_stopping=5, max_depth=3))
    config.feature_names = list(KEPT)
    config.ranker.interaction_constraints = [list(s) for s in CONSTRAINTS]
    config.candidates.emb_dim = 6
    return config.to_dict()


def test_model_asset_trains_the_studys_configuration(tmp_path: Path) -> None:
    result = dg.materialize(
        [fake_training_set, fake_study, two_tier_model],
        resources={"lake": LakeResource(var_dir=str(tmp_path / "var"))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    model = CatalogModel.load(result.output_for_node("two_tier_model", "ranker"))
    assert model.model.feature_names == KEPT
    booster = model.model.ranker.booster
    assert booster is not None and booster.feature_names == KEPT
    assert model.model.config.ranker.interaction_constraints == CONSTRAINTS
    assert model.model.generator.embeddings.vectors.shape[1] == 6
    assert model.model.config.ranker.device == "cpu"  # the host's device, not the study's
    assert model.recommend_for(["i001", "i002"], 5)


@dg.asset(name="model_evaluation", deps=["ranker"])
def fake_evaluation(ranker: str) -> None:
    """What the real evaluation leaves on the artifact it judged: its held-out figures."""
    model = CatalogModel.load(ranker)
    model.metrics.update({"holdout_P@20": 12.5, "holdout_MRR@20": 4.5})
    model.save(ranker)


def test_the_deployed_model_is_the_evaluated_configuration_refitted_on_every_session(
    tmp_path: Path,
) -> None:
    result = dg.materialize(
        [fake_training_set, fake_study, two_tier_model, fake_evaluation, deployed_model],
        resources={"lake": LakeResource(var_dir=str(tmp_path / "var"))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    evaluated = CatalogModel.load(result.output_for_node("two_tier_model", "ranker"))
    deployed = CatalogModel.load(result.output_for_node("deployed_model"))
    split = _training_set(250)
    usable = [s for s in [*split["train"], *split["held_out"]] if len(s) >= 2]
    assert deployed.metrics["n_sessions"] == len(usable) > evaluated.metrics["n_sessions"]
    assert deployed.model_version != evaluated.model_version
    assert deployed.model.feature_names == evaluated.model.feature_names == KEPT
    assert deployed.model.config.ranker.interaction_constraints == CONSTRAINTS
    # the figures it was selected on travel with it
    assert (deployed.metrics["holdout_P@20"], deployed.metrics["holdout_MRR@20"]) == (12.5, 4.5)
    assert deployed.recommend_for(["i001", "i002"], 5)


def _older_study(var: Path) -> dict:
    """A completed study from an earlier training set in the asset's storage, under the
    name every retrain resumed before studies were per training data; returns its params."""
    storage = open_storage(storage_path(Settings.from_env({}, var_dir=var)))
    study = optuna.create_study(study_name="ranker-lake", storage=storage, direction="maximize")
    trial = study.ask()
    params = SearchSpace().suggest(trial)
    study.tell(trial, 50.0)
    return params


def test_no_completed_trial_fails_the_study_and_trains_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHREC_AUTOML_TRIALS", "0")
    var = tmp_path / "var"
    older = _older_study(var)  # its best must not stand in for this retrain's
    result = dg.materialize(
        [study_sized_training_set, no_sequence_model, ranker_study, two_tier_model],
        resources={"lake": LakeResource(var_dir=str(var))},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "ranker_study"
    assert "NoCompletedTrialsError" in str(failure.event_specific_data.error)
    assert not result.asset_materializations_for_node("two_tier_model")
    assert not (var / "artifacts" / "models").exists()
    assert not list(var.rglob("champion.json"))
    # The retrain opened its own study and queued the older best in it (never run).
    storage = open_storage(storage_path(Settings.from_env({}, var_dir=var)))
    (retrain,) = [s for s in storage.get_all_studies() if s.study_name != "ranker-lake"]
    assert retrain.study_name.startswith("ranker-lake-")
    queued = optuna.load_study(study_name=retrain.study_name, storage=storage).trials
    assert [(t.state.name, t.system_attrs["fixed_params"]) for t in queued] == [("WAITING", older)]
