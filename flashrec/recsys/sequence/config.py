"""The sequence model's configuration: size, training budget and device.

WHY a dataclass of plain values: it travels in the two-tier model's manifest, in Dagster
metadata and in Optuna trials, and ``from_dict`` must read older dicts (missing keys keep
their defaults) so artifacts stay loadable as fields are added.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class SequenceConfig:
    dim: int = 64  # item embedding (shared with the output layer) and hidden size
    layers: int = 2
    heads: int = 2  # must divide dim
    max_len: int = 20  # most recent items the model reads
    dropout: float = 0.2
    epochs: int = 6  # training budget: passes over the head's windows
    refit_epochs: int = 1  # extra passes over all sessions after the ranker is trained
    batch_size: int = 256  # full-width windows per step (shorter ones: as many positions)
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    # Sampled softmax: negatives drawn per step from popularity^0.75 with a log-q
    # correction; 0 = full softmax over every item (best quality, slowest on CPU).
    negatives: int = 2048
    candidates: int = 50  # top-K the model adds to tier 1 (through FAISS)
    # FAISS index over the output embeddings (inner product). ivfflat scans 16 of 256
    # lists: on DIGINETICA 98% of the exact top-50 at a thirtieth of flat search's cost.
    ann_kind: str = "ivfflat"
    device: str = "cpu"  # "cpu" or "cuda" (JAX device; needs JAX's CUDA plugin)
    seed: int = 42
    # Cases per epoch-end validation (MRR@20 over all items); what Optuna prunes on.
    valid_cases: int = 5000

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        if min(self.dim, self.layers, self.heads, self.max_len, self.batch_size) < 1:
            raise ValueError("dim, layers, heads, max_len and batch_size must be positive")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> SequenceConfig | None:
        """Inverse of ``to_dict``; None stays None; unknown keys are refused."""
        if d is None:
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown sequence settings {unknown}")
        return cls(**dict(d))
