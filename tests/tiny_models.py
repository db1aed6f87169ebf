"""A two-tier configuration small enough for unit tests (seconds on tiny worlds)."""

from __future__ import annotations

from flashrec.recsys.candidates import CandidateConfig
from flashrec.recsys.model import TwoTierConfig
from flashrec.recsys.ranker import RankerConfig

TINY_BUDGETS = {"trans": 10, "sr": 10, "covis": 10, "sknn": 10, "emb": 10, "emb_last": 5, "pop": 5}


def tiny_two_tier(ranker: RankerConfig | None = None, tail_fraction: float = 0.3) -> TwoTierConfig:
    candidates = CandidateConfig(budgets=dict(TINY_BUDGETS), emb_dim=8)
    return TwoTierConfig(
        candidates=candidates,
        ranker=ranker or RankerConfig(),
        tail_fraction=tail_fraction,
        batch_size=256,
    )
