"""The sequence study on a tiny world: trials pruned by epochs, a quality/cost front, the
cheapest trial within tolerance chosen; and the ranker study's data with a sequence model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from flashrec.recsys.automl.data import RankingDataBuilder
from flashrec.recsys.automl.sequence import SequenceSpace, run_sequence_study
from flashrec.recsys.automl.space import feature_groups
from flashrec.recsys.automl.study import open_storage
from flashrec.recsys.ranker_features import FEATURE_NAMES, SEQUENCE_FEATURE_NAMES
from tests.tiny_models import tiny_sequence, tiny_two_tier
from tests.unit.test_sequence_model import N_ITEMS, _world

TINY_SPACE = SequenceSpace(
    dims=(8, 16), layers=(1, 1), heads=(1, 2), max_lens=(4, 8), epochs=(1, 3)
)


def test_study_prunes_by_epoch_and_chooses_within_tolerance(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "studies.db")
    base = tiny_sequence(epochs=3)
    out = run_sequence_study(
        _world(400, 0), N_ITEMS, storage, "seq-test", 4, base, space=TINY_SPACE
    )
    assert 1 <= len(out.trials) <= 4 and len(out.trials) + out.n_pruned == 4
    assert out.trials[0].config == dataclasses.replace(base)  # the defaults run first
    best = max(t.mrr_at_20 for t in out.trials)
    chosen = out.trials[out.chosen]
    assert chosen.mrr_at_20 >= best * 0.99
    assert all(t.cost_ms_per_query > 0 and t.fit_s > 0 for t in out.trials)
    assert out.chosen in out.front
    assert len(out.table()) == len(out.trials) + 1 and "chosen" in "".join(out.table())
    # resumed: the same study, more trials, the earlier ones kept
    again = run_sequence_study(
        _world(400, 0), N_ITEMS, storage, "seq-test", 1, base, space=TINY_SPACE
    )
    assert len(again.trials) + again.n_pruned == 5


def test_ranker_study_data_has_the_sequence_columns() -> None:
    cfg = tiny_two_tier()
    cfg.sequence = tiny_sequence(epochs=2)
    builder = RankingDataBuilder([np.asarray(s) for s in _world(400, 0)], N_ITEMS, cfg)
    assert builder.sequence is not None and builder.generator.sequence is builder.sequence
    data = builder.data()
    cols = [FEATURE_NAMES.index(n) for n in SEQUENCE_FEATURE_NAMES]
    assert not np.isnan(data.x_valid[:, cols[0]]).any()
    assert feature_groups()["sequence"] == SEQUENCE_FEATURE_NAMES
