"""The sequence model in the Dagster model chain (in process, tiny data): its asset
studies and trains a standalone challenger with a per-epoch log, and the two-tier model
downstream carries the chosen sequence model as a tier-1 source and ranker features."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dagster as dg
import pytest

import assets.sequence
from assets.models import ranker_study, split_training_set, two_tier_model
from assets.resources import LakeResource
from assets.sequence import sequence_model
from flashrec.recsys.ranker_features import SEQUENCE_FEATURE_NAMES
from flashrec.scoring.catalog_model import CatalogModel, training_data
from tests import synthetic
from tests.tiny_models import tiny_sequence


@dg.asset(name="model_training_set")
def small_training_set() -> dict:
    data = training_data(synthetic.interactions(n_sessions=400))
    return split_training_set(data, [[None] * len(s) for s in data.sessions])


def test_chain_trains_the_sequence_model_into_the_two_tier_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "FLASHREC_SEQUENCE_TRIALS": "1",
        "FLASHREC_SEQUENCE_EPOCHS": "2",
        "FLASHREC_AUTOML_TRIALS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    # the settings' epochs and device on a network small enough for a unit test
    monkeypatch.setattr(
        assets.sequence,
        "base_config",
        lambda s: dataclasses.replace(
            tiny_sequence(), epochs=s.sequence_epochs, device=s.model_device
        ),
    )
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [small_training_set, sequence_model, ranker_study, two_tier_model],
        resources={"lake": LakeResource(var_dir=str(tmp_path / "var"))},
        instance=instance,
    )
    assert result.success
    handed = result.output_for_node("sequence_model")
    assert handed["config"]["device"] == "cpu"
    records = [
        r.user_message
        for r in instance.all_logs(result.run_id)
        if "standalone epoch" in r.user_message
    ]
    assert records and "loss=" in records[0]
    variant = CatalogModel.load(handed["artifact"])
    assert variant.mode == "sequence"
    assert variant.recommend_for(["i001", "i002"], 5)
    meta = result.asset_materializations_for_node("sequence_model")[0].metadata
    assert meta["trials_completed"].value == 1 and "front" in meta
    assert [r for r in records if "epoch 2:" in r]  # the settings' epoch budget
    two_tier = CatalogModel.load(result.output_for_node("two_tier_model", "ranker"))
    assert two_tier.mode == "two_tier" and two_tier.model.sequence is not None
    assert two_tier.model.sequence.config.dim == handed["config"]["dim"]
    assert "seq.recall" in two_tier.model.report.candidates
    assert set(SEQUENCE_FEATURE_NAMES) <= set(two_tier.model.feature_names) or not (
        set(SEQUENCE_FEATURE_NAMES) & set(two_tier.model.feature_names)
    )  # the ranker study may switch the group off, but never half of it
    assert two_tier.recommend_for(["i001", "i002"], 5)


def test_off_switch_hands_on_no_sequence_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHREC_SEQUENCE_MODEL", "off")
    result = dg.materialize(
        [small_training_set, sequence_model],
        resources={"lake": LakeResource(var_dir=str(tmp_path / "var"))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    assert result.output_for_node("sequence_model") == {"config": None, "artifact": None}
