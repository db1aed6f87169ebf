"""The sequence model on a tiny learnable world: windows, learning, artifact, device;
then inside the two-tier model (a tier-1 source and ranker features) and alone (the
standalone challenger), saved and loaded like any model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flashrec.recsys.data import expand_pairs, from_prefixes
from flashrec.recsys.metrics import precision_mrr
from flashrec.recsys.model import TwoTierConfig, TwoTierModel
from flashrec.recsys.ranker import RankerConfig
from flashrec.recsys.ranker_features import FEATURE_NAMES, SEQUENCE_FEATURE_NAMES
from flashrec.recsys.sequence.config import SequenceConfig
from flashrec.recsys.sequence.model import SequenceModel, resolve_device
from flashrec.recsys.sequence.windows import query_windows, training_windows
from tests.tiny_models import tiny_sequence, tiny_two_tier

N_ITEMS = 41


def _world(n_sessions: int, seed: int) -> list[np.ndarray]:
    """The next item depends on the last TWO items: after (a, b) comes b + (b - a), so a
    model must read the order, not only the last item (transitions alone are ambiguous)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_sessions):
        a = int(rng.integers(0, N_ITEMS))
        step = int(rng.choice([1, 3]))
        s = [a, (a + step) % N_ITEMS]
        for _ in range(int(rng.integers(1, 6))):
            s.append((s[-1] + step) % N_ITEMS)
        out.append(np.array(s))
    return out


def test_training_windows_hold_every_target_once_left_padded() -> None:
    sessions = [np.array([5, 6, 7]), np.arange(10), np.array([3])]
    inputs, targets = training_windows(sessions, max_len=4)
    # 2 + 9 targets; session 2 needs 3 windows of at most 4 targets; [3] gives none
    assert (targets > 0).sum() == 11
    assert inputs.shape == targets.shape == (4, 4)
    assert inputs[0].tolist() == [0, 0, 6, 7] and targets[0].tolist() == [0, 0, 7, 8]
    # every target's input is the item just before it (ids shifted by one, 0 = padding)
    valid = targets > 0
    assert np.all(targets[valid] == inputs[valid] + 1)
    assert sorted((targets[targets > 0] - 1).tolist()) == sorted([6, 7, *range(1, 10)])
    q = from_prefixes([np.array([1, 2, 3, 4, 5, 6]), np.array([9])])
    assert query_windows(q, 4).tolist() == [[4, 5, 6, 7], [0, 0, 0, 10]]


@pytest.fixture(scope="module")
def seq_model() -> SequenceModel:
    valid = expand_pairs(_world(60, 1))
    return SequenceModel(tiny_sequence(epochs=8)).fit(_world(500, 0), N_ITEMS, valid=valid)


def test_learns_the_order_of_the_session(seq_model: SequenceModel) -> None:
    q = expand_pairs(_world(100, 2))
    p, mrr = precision_mrr(seq_model.recommend(q, 5), q.targets)
    # the first case of each session is ambiguous (step 1 or 3); the rest are determined
    assert mrr > 60, (p, mrr)
    history = seq_model.history
    assert [r.epoch for r in history] == list(range(1, 9))
    assert history[-1].loss < history[0].loss
    assert history[-1].mrr_at_20 is not None and history[-1].mrr_at_20 > history[0].mrr_at_20
    # after (10, 13) comes 16, after (12, 13) comes 14: the same last item, two answers
    top = seq_model.recommend(from_prefixes([np.array([10, 13]), np.array([12, 13])]), 1)
    assert top[:, 0].tolist() == [16, 14]


def test_scores_are_inner_products_that_faiss_searches(seq_model: SequenceModel) -> None:
    q = from_prefixes([np.array([1, 2]), np.array([7, 10, 13])])
    states = seq_model.states(q)
    scores, ids = seq_model.search(states, 5)
    exact = states @ seq_model.item_vectors.T
    assert ids.tolist() == np.argsort(-exact, axis=1)[:, :5].tolist()
    rows, items = np.array([0, 1]), ids[:, 0]
    np.testing.assert_allclose(seq_model.pair_scores(states, rows, items), scores[:, 0], rtol=1e-4)


def test_artifact_round_trip_and_device(seq_model: SequenceModel, tmp_path: Path) -> None:
    q = expand_pairs(_world(20, 3))
    loaded = SequenceModel.load(seq_model.save(tmp_path / "seq"))
    np.testing.assert_allclose(loaded.states(q), seq_model.states(q), atol=1e-5)
    assert loaded.history == seq_model.history
    assert resolve_device("cpu").platform == "cpu"
    # a host without JAX's CUDA plugin (CI) keeps serving on the CPU
    loaded.use_device("cuda")
    assert loaded.device.platform in ("cpu", "gpu")
    np.testing.assert_allclose(loaded.states(q), seq_model.states(q), atol=1e-4)


def test_config_round_trip_and_checks() -> None:
    cfg = tiny_two_tier()
    cfg.sequence = tiny_sequence()
    again = TwoTierConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.sequence == cfg.sequence
    old = cfg.to_dict()
    del old["sequence"], old["mode"]  # a dict written before the sequence model existed
    assert TwoTierConfig.from_dict(old).sequence is None
    with pytest.raises(ValueError, match="heads"):
        SequenceConfig(dim=10, heads=3)
    with pytest.raises(ValueError, match="needs a sequence"):
        TwoTierConfig(mode="sequence")


def _two_tier(sequence: SequenceConfig | None, mode: str = "two_tier") -> TwoTierConfig:
    cfg = tiny_two_tier(RankerConfig(num_rounds=30, early_stopping=10, max_depth=4))
    cfg.sequence, cfg.mode = sequence, mode
    return cfg


@pytest.fixture(scope="module")
def with_seq() -> TwoTierModel:
    return TwoTierModel(_two_tier(tiny_sequence(epochs=8))).fit(_world(600, 0), N_ITEMS)


def test_two_tier_uses_it_as_source_and_features(with_seq: TwoTierModel) -> None:
    assert with_seq.sequence is not None and with_seq.generator.sequence is with_seq.sequence
    assert with_seq.feature_names == FEATURE_NAMES
    assert "seq.recall" in with_seq.report.candidates
    assert with_seq.report.candidates["seq.recall"] > 80
    # head epochs, then the refit pass over all sessions
    assert len(with_seq.sequence.history) == 9
    assert {"sequence_head_s", "sequence_all_s"} <= set(with_seq.report.timings)
    rows, cols, x = with_seq.pair_features([[10, 13], [12, 13]])
    seq_cols = x[:, [FEATURE_NAMES.index(n) for n in SEQUENCE_FEATURE_NAMES]]
    assert not np.isnan(seq_cols[:, 0]).any()  # a score for every candidate
    best = cols[(rows == 0) & (seq_cols[:, 3] == 1)]  # the model's top candidate
    assert best.tolist() == [16]
    gains = with_seq.ranker.importance()
    assert any(name in gains for name in SEQUENCE_FEATURE_NAMES)


def test_without_it_the_ranker_has_no_sequence_columns() -> None:
    model = TwoTierModel(_two_tier(None))
    assert not set(SEQUENCE_FEATURE_NAMES) & set(model.feature_names)


def test_two_tier_artifact_round_trip(with_seq: TwoTierModel, tmp_path: Path) -> None:
    sessions = [s[:-1] for s in _world(30, 5)]
    loaded = TwoTierModel.load(with_seq.save(tmp_path / "m"))
    assert loaded.sequence is not None
    assert (
        loaded.recommend_batch(sessions, 5).tolist()
        == with_seq.recommend_batch(sessions, 5).tolist()
    )


def test_older_artifact_still_loads(tmp_path: Path) -> None:
    """A v2 artifact (before the sequence model; "all features" meant the older list)."""
    cfg = _two_tier(None)
    model = TwoTierModel(cfg).fit(_world(300, 0), N_ITEMS)
    folder = model.save(tmp_path / "v2")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = 2
    for key in ("sequence", "mode", "feature_names"):
        manifest["config"].pop(key)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    loaded = TwoTierModel.load(folder)
    assert loaded.sequence is None and loaded.feature_names == model.feature_names
    sessions = [[1, 2], [7, 10]]
    assert (
        loaded.recommend_batch(sessions, 5).tolist() == model.recommend_batch(sessions, 5).tolist()
    )
    manifest["version"] = 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="v2, v3"):
        TwoTierModel.load(folder)


def test_standalone_sequence_variant_is_a_catalog_model(tmp_path: Path) -> None:
    from flashrec.scoring.catalog_model import CatalogModel, training_data
    from tests import synthetic

    data = training_data(synthetic.interactions(n_sessions=300))
    epochs: list[int] = []
    model = CatalogModel.fit(
        data.sessions,
        data.catalog,
        config=_two_tier(tiny_sequence(epochs=4), mode="sequence"),
        on_epoch=lambda r: epochs.append(r.epoch),
    )
    assert epochs == [1, 2, 3, 4, 5]  # head epochs, then one over all sessions
    assert model.mode == "sequence" and {"P@20", "MRR@20"} <= set(model.metrics)
    loaded = CatalogModel.load(model.save(tmp_path / "seq-variant"))
    assert loaded.mode == "sequence"
    assert not (tmp_path / "seq-variant" / "two_tier" / "ranker.json").exists()
    recents = [["i001", "i002"], [], ["unknown-item"]]
    got = loaded.recommend_batch(recents, 5)
    assert got == model.recommend_batch(recents, 5)
    assert all(len(r) == 5 for r in got)
    assert len({item for item, _ in got[0]}) == 5
