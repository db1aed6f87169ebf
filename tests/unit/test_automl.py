"""AutoML over the ranker on a tiny learnable world: pruning, persistence, warm start,
Pareto fronts, the smallest-embedding rule, the deployed configuration, clear errors and
plots (seconds, no services)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pytest

from flashrec.recsys.automl.choice import best_two_tier_config
from flashrec.recsys.automl.data import RankingData, RankingDataBuilder, TrainingDataTooSmallError
from flashrec.recsys.automl.pareto import Point, pareto_front, smallest_within
from flashrec.recsys.automl.pipeline import run_automl
from flashrec.recsys.automl.space import (
    NoFeaturesError,
    config_from_params,
    default_params,
    feature_groups,
)
from flashrec.recsys.automl.study import (
    NoCompletedTrialsError,
    StudyConfig,
    best_trial,
    completed,
    open_storage,
    open_study,
    run_study,
    storage_path,
    trial_config,
)
from flashrec.recsys.data import expand_pairs
from flashrec.recsys.model import TwoTierConfig, TwoTierModel
from flashrec.recsys.ranker_features import FEATURE_NAMES
from flashrec.recsys.training_rows import ranking_rows
from flashrec.settings import Settings
from tests.tiny_models import tiny_two_tier

N_ITEMS = 61
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _world(n_sessions: int, seed: int) -> list[np.ndarray]:
    """Item i is usually followed by i+1 (mod 60), sometimes by i+2; some popular noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_sessions):
        cur = int(rng.integers(1, 61))
        s = [cur]
        for _ in range(int(rng.integers(2, 7)) - 1):
            u = rng.random()
            if u < 0.6:
                cur = cur % 60 + 1
            elif u < 0.8:
                cur = (cur + 1) % 60 + 1
            else:
                cur = int(rng.choice([1, 2, 3, 4, 5]))
            s.append(cur)
        out.append(np.array(s))
    return out


def _two_tier() -> TwoTierConfig:
    return tiny_two_tier(tail_fraction=0.4)


def _study_cfg(name: str, **kw: object) -> StudyConfig:
    base: dict[str, object] = dict(
        study_name=name,
        n_trials=6,
        num_rounds=24,
        early_stopping=8,
        report_every=2,
        min_rounds=2,
        pruner="halving",
        n_startup_trials=4,
        threads=1,
        gc_after_trial=False,
    )
    base.update(kw)
    return StudyConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def builder() -> RankingDataBuilder:
    return RankingDataBuilder(_world(700, 0), N_ITEMS, _two_tier())


@pytest.fixture(scope="module")
def data(builder: RankingDataBuilder) -> RankingData:
    return builder.data()


@pytest.fixture(scope="module")
def new_data(data: RankingData) -> RankingData:
    """A retrain's training data: other training cases, the same validation cases."""
    return data.subsample_train(0.6, seed=1)


@dataclass
class FixedBuilder:
    """A builder whose matrices are given (run_automl only asks it for ``data()``)."""

    ranking: RankingData

    def data(self, emb_dim: int | None = None) -> RankingData:
        return self.ranking


def test_ranking_rows_match_candidates(builder: RankingDataBuilder, data: RankingData) -> None:
    assert data.x_train.shape[1] == len(FEATURE_NAMES)
    assert np.all(np.diff(data.qid_train) >= 0) and np.all(np.diff(data.qid_valid) >= 0)
    assert data.y_train.sum() == len(np.unique(data.qid_train))  # one positive per kept case
    q = expand_pairs(_world(20, 9))
    x, y, g, rows, items = ranking_rows(
        builder.generator, q, sample=False, neg_rate=1.0, batch_size=7, seed=0
    )
    assert len(x) == len(y) == len(g) == len(items) and rows.max() < len(q)


def test_feature_groups_cover_every_feature_once() -> None:
    groups = feature_groups()
    flat = [n for names in groups.values() for n in names]
    assert sorted(flat) == sorted(FEATURE_NAMES)
    off = {f"use_{g}": False for g in groups if g not in ("other", "session")}
    tc = config_from_params({**default_params(), **off, "interactions": "within_group"})
    assert tc.feature_names == groups["session"] and tc.constraints == [list(range(5))]
    with pytest.raises(NoFeaturesError):
        config_from_params({f"use_{g}": False for g in groups})


def test_study_prunes_persists_and_resumes(data: RankingData, tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "studies.db")
    cfg = _study_cfg("s1", n_trials=10)
    _, first = run_study(data, storage, cfg)
    assert first.n_completed >= 1 and first.n_pruned >= 1
    assert first.best_value > 0
    # A new storage object on the same file (another process) resumes the same study.
    again = open_storage(tmp_path / "studies.db")
    study, second = run_study(data, again, _study_cfg("s1", n_trials=2))
    assert len(study.trials) == 12 and second.n_run == 2
    assert best_trial(study).value >= first.best_value


def test_warm_start_enqueues_previous_best_first(data: RankingData, tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "studies.db")
    prev, _ = run_study(data, storage, _study_cfg("old", n_trials=4, pruner="none"))
    top = sorted(
        [t for t in prev.trials if t.value is not None], key=lambda t: -float(t.value or 0)
    )[:2]
    study, out = run_study(
        data, storage, _study_cfg("new", n_trials=2, warm_start_from="old", warm_start_top_k=2)
    )
    assert out.n_enqueued == 2
    assert [study.trials[i].params for i in range(2)] == [t.params for t in top]
    # The previous best reaches the previous best value again immediately.
    assert out.trials_to_reach(float(top[0].value or 0) - 1e-9) == 1


def test_retrain_is_a_new_study_warm_started_and_judged_on_its_own_trials(
    data: RankingData, new_data: RankingData, tmp_path: Path
) -> None:
    """Each training data gets its own study; the previous study's best parameters run
    first on the new data, and "best" comes from the new study's trials alone."""
    storage = open_storage(tmp_path / "studies.db")
    old_study, old = run_study(
        data, storage, _study_cfg("fam", per_data=True, n_trials=3, pruner="none")
    )
    assert old.study_name == f"fam-{old.fingerprint}" and old.warm_started_from is None
    # An unbeatable value on the old data: had old trials competed, it would stay best.
    ranked = sorted(completed(old_study), key=lambda t: -float(t.value or 0))
    worst, best = ranked[-1], ranked[0]
    old_study.add_trial(
        optuna.trial.create_trial(params=worst.params, distributions=worst.distributions, value=1e3)
    )

    cfg = _study_cfg("fam", per_data=True, n_trials=3, pruner="none", warm_start_top_k=2)
    study, out = run_study(new_data, storage, cfg)
    assert out.study_name == f"fam-{out.fingerprint}" != old.study_name
    assert out.warm_started_from == old.study_name and out.n_enqueued == 2
    assert [t.params for t in study.trials[:2]] == [worst.params, best.params]
    assert len(study.trials) == 3  # its own trials only; the old study is untouched
    assert len(old_study.trials) == 4
    own = [float(t.value) for t in completed(study) if t.value is not None]
    assert study.trials[0].value != 1e3  # re-measured on the new data
    assert out.best_value == max(own) < 1e3
    assert out.best_number < 3 and 1 <= (out.trials_to_within(1.0) or 0) <= 3

    # The same data again (a retried run) resumes its study, without a second warm start.
    again, resumed = run_study(new_data, storage, _study_cfg("fam", per_data=True, n_trials=1))
    assert resumed.study_name == out.study_name and resumed.n_enqueued == 0
    assert len(again.trials) == 4 and resumed.n_run == 1
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert names == {old.study_name, out.study_name}  # one storage: the dashboard sees both


def test_zero_trial_retrain_fails_whatever_older_studies_hold(
    data: RankingData, new_data: RankingData, tmp_path: Path
) -> None:
    settings = Settings.from_env({}, var_dir=tmp_path / "var")
    storage = open_storage(storage_path(settings))
    _, old = run_study(data, storage, _study_cfg("fam", per_data=True, n_trials=2, pruner="none"))
    assert old.n_completed == 2

    retrain = _study_cfg("fam", per_data=True, n_trials=0)
    with pytest.raises(NoCompletedTrialsError, match="no completed trial"):
        run_study(new_data, storage, retrain)
    with pytest.raises(NoCompletedTrialsError):
        run_automl([], N_ITEMS, settings, retrain, builder=FixedBuilder(new_data))  # type: ignore[arg-type]
    assert not (settings.artifacts_dir / "automl").exists()  # no champion, nothing written


def test_pareto_front_on_hand_made_points() -> None:
    pts = [
        Point(10.0, 1.0, "a"),  # front (cheapest)
        Point(12.0, 2.0, "b"),  # front
        Point(11.0, 3.0, "c"),  # dominated by b
        Point(15.0, 5.0, "d"),  # front (best)
        Point(15.0, 6.0, "e"),  # dominated by d (same quality, dearer)
        Point(9.0, 1.0, "f"),  # dominated by a
    ]
    assert [pts[i].label for i in pareto_front(pts)] == ["a", "b", "d"]
    assert pareto_front([]) == []


def test_smallest_embedding_within_one_percent() -> None:
    pts = [
        Point(20.0, 1, "8"),
        Point(20.9, 2, "16"),
        Point(21.05, 4, "32"),
        Point(21.2, 8, "64"),
        Point(21.1, 16, "128"),
    ]
    idx, loss = smallest_within(pts, 1.0)  # floor = 21.2 * 0.99 = 20.988
    assert pts[idx].label == "32" and loss == pytest.approx((21.2 - 21.05) / 21.2 * 100)
    idx, loss = smallest_within(pts, 0.0)
    assert pts[idx].label == "64" and loss == 0.0
    with pytest.raises(ValueError):
        smallest_within([], 1.0)


def test_zero_completed_trials_is_a_clear_error(
    builder: RankingDataBuilder, data: RankingData, tmp_path: Path
) -> None:
    storage = open_storage(tmp_path / "studies.db")
    with pytest.raises(NoCompletedTrialsError, match="no completed trial"):
        run_study(data, storage, _study_cfg("empty", n_trials=0))
    with pytest.raises(NoCompletedTrialsError, match="no completed trial"):
        best_two_tier_config(open_study(storage, _study_cfg("empty"), 24), _study_cfg("empty"))
    settings = Settings.from_env({}, var_dir=tmp_path / "var")
    with pytest.raises(NoCompletedTrialsError):
        run_automl([], N_ITEMS, settings, _study_cfg("none", n_trials=0), builder=builder)
    assert not list((tmp_path / "var").rglob("champion.json"))
    assert not (settings.artifacts_dir / "automl").exists()  # nothing half-written


def test_tiny_training_set_is_a_clear_error() -> None:
    with pytest.raises(TrainingDataTooSmallError, match="at least"):
        RankingDataBuilder(_world(10, 0), N_ITEMS, _two_tier())
    with pytest.raises(TrainingDataTooSmallError, match="cases"):
        RankingDataBuilder([np.array([1, 2])] * 60, N_ITEMS, _two_tier())


def test_run_automl_writes_plots_fronts_and_champion(
    builder: RankingDataBuilder, tmp_path: Path
) -> None:
    settings = Settings.from_env({}, var_dir=tmp_path / "var")
    res = run_automl(
        [],
        N_ITEMS,
        settings,
        _study_cfg("e2e", n_trials=6, pruner="none"),  # importances need 2+ completed trials
        builder=builder,
        emb_dims=(4, 8),
    )
    for key in ("history", "importances", "pareto_cost", "pareto_size"):
        path = res.plots[key]
        assert path.suffix == ".png" and path.read_bytes()[:4] == b"\x89PNG"
    assert res.embedding is not None and res.embedding.chosen_dim in (4, 8)
    assert res.embedding.loss_pct <= 1.0
    assert res.cost_front and all(0 <= i < len(res.cost_points) for i in res.cost_front)
    assert res.chosen.result.mrr_at_20 >= 0.99 * res.best.result.mrr_at_20
    assert res.champion_dir is not None and (res.champion_dir / "champion.json").exists()
    assert (settings.artifacts_dir / "optuna" / "studies.db").exists()
    assert len(res.table()) == 5
    # What the platform deploys: the chosen trial, complete, with the chosen dimension.
    chosen = trial_config(res.chosen.params, _study_cfg("e2e"))
    assert res.config is not None and res.config.feature_names == chosen.feature_names
    assert res.config.ranker == chosen.ranker
    assert res.config.candidates.emb_dim == res.embedding.chosen_dim
    manifest = json.loads((res.champion_dir / "champion.json").read_text())
    assert TwoTierConfig.from_dict(manifest["two_tier_config"]).feature_names == (
        trial_config(res.best.params, _study_cfg("e2e")).feature_names
    )


def test_best_trial_configuration_is_what_the_model_trains_and_keeps(
    data: RankingData, tmp_path: Path
) -> None:
    """The best trial (here: two groups off, trees confined to one group) becomes a
    complete TwoTierConfig; a model built from it has exactly those columns and
    constraints, survives save/load and scores."""
    storage = open_storage(tmp_path / "studies.db")
    cfg = _study_cfg("deploy", n_trials=1, pruner="none")
    params = {**default_params(), "use_sknn": False, "use_emb": False}
    params["interactions"] = "within_group"
    open_study(storage, cfg, 24).enqueue_trial(params)
    study, _ = run_study(data, storage, cfg)
    assert best_trial(study).params == params

    config = best_two_tier_config(study, cfg, _two_tier(), emb_dim=4)
    kept = [n for n in FEATURE_NAMES if not n.startswith(("sknn_", "emb_"))]
    groups = feature_groups()
    assert config.feature_names == kept
    assert config.candidates.emb_dim == 4
    constraints = config.ranker.interaction_constraints
    assert sorted(map(sorted, constraints)) == sorted(
        sorted(groups[g]) for g in groups if g not in ("sknn", "emb")
    )

    model = TwoTierModel(config).fit(_world(700, 0), N_ITEMS)
    booster = model.ranker.booster
    assert booster is not None and booster.feature_names == kept
    trained = json.loads(booster.save_config())["learner"]["gradient_booster"]
    assert trained["tree_train_param"]["interaction_constraints"] not in ("", "[]")
    assert model.ranker.config.params()["interaction_constraints"] == constraints

    loaded = TwoTierModel.load(model.save(tmp_path / "model"))
    assert loaded.feature_names == kept and loaded.config == config
    assert loaded.ranker.booster is not None and loaded.ranker.booster.feature_names == kept
    assert loaded.generator.embeddings.vectors.shape[1] == 4
    batch = [[5, 6], [20], [1, 2, 3]]
    assert np.array_equal(loaded.recommend_batch(batch, 10), model.recommend_batch(batch, 10))
    _, _, x = loaded.pair_features(batch)
    assert x.shape[1] == len(kept)
