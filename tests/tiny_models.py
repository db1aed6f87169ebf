"""A two-tier configuration small enough for unit tests (seconds on tiny worlds)."""

from __future__ import annotations

from flashrec.recsys.candidates import CandidateConfig
from flashrec.recsys.model import TwoTierConfig
from flashrec.recsys.ranker import RankerConfig
from flashrec.recsys.sequence.config import SequenceConfig

TINY_BUDGETS = {"trans": 10, "sr": 10, "covis": 10, "sknn": 10, "emb": 10, "emb_last": 5, "pop": 5}


def tiny_two_tier(ranker: RankerConfig | None = None, tail_fraction: float = 0.3) -> TwoTierConfig:
    candidates = CandidateConfig(budgets=dict(TINY_BUDGETS), emb_dim=8)
    return TwoTierConfig(
        candidates=candidates,
        ranker=ranker or RankerConfig(),
        tail_fraction=tail_fraction,
        batch_size=256,
    )


def tiny_sequence(epochs: int = 6, candidates: int = 10) -> SequenceConfig:
    """A sequence model that learns a tiny world in a few seconds on one core."""
    return SequenceConfig(
        dim=16,
        layers=1,
        heads=2,
        max_len=8,
        dropout=0.0,
        epochs=epochs,
        refit_epochs=1,
        batch_size=32,
        learning_rate=1e-2,
        negatives=0,
        candidates=candidates,
        valid_cases=200,
    )
