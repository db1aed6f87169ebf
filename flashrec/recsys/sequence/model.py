"""``SequenceModel``: fit on sessions, read the session's state, score and search items.

WHY the state and the item table are exposed separately: tier 1 searches the item table
with the state through FAISS (inner product = the model's score), tier 2 looks up the
score of each candidate, and the standalone variant ranks all items with the same two.
The device is a JAX device chosen by name (``cpu`` or ``cuda``); a host without JAX's
CUDA plugin falls back to the CPU with a warning, so one artifact serves anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from flashrec.recsys.ann import AnnConfig, AnnIndex
from flashrec.recsys.baselines import item_counts
from flashrec.recsys.data import Queries
from flashrec.recsys.metrics import precision_mrr
from flashrec.recsys.sequence.config import SequenceConfig
from flashrec.recsys.sequence.net import Params, init_params, last_state
from flashrec.recsys.sequence.train import (
    EpochCallback,
    EpochReport,
    length_groups,
    train_epochs,
)
from flashrec.recsys.sequence.windows import bucket, query_windows, training_windows

log = logging.getLogger(__name__)

FORMAT = "flashrec.sequence"
VERSION = 1


def resolve_device(name: str) -> jax.Device:
    """The JAX device called ``name`` ('cpu', 'cuda'/'gpu'); the CPU when absent."""
    platform = {"cuda": "gpu", "gpu": "gpu"}.get(name.lower(), name.lower())
    try:
        return jax.devices(platform)[0]
    except RuntimeError:
        log.warning("no JAX %s device here (is JAX's CUDA plugin installed?); using the CPU", name)
        return jax.devices("cpu")[0]


_STATE_FNS: dict[tuple, Callable[[Params, jax.Array], jax.Array]] = {}


def state_fn(cfg: SequenceConfig) -> Callable[[Params, jax.Array], jax.Array]:
    """The jitted ``last_state`` for this network shape, shared by every model of it."""
    key = (cfg.dim, cfg.layers, cfg.heads, cfg.max_len)
    if key not in _STATE_FNS:
        frozen = dataclasses.replace(cfg)
        _STATE_FNS[key] = jax.jit(lambda p, s: last_state(p, s, frozen))
    return _STATE_FNS[key]


class SequenceModel:
    def __init__(self, config: SequenceConfig | None = None) -> None:
        self.config = config or SequenceConfig()
        self.n_items = 0
        self.params: dict[str, np.ndarray] = {}
        self.history: list[EpochReport] = []
        self.fit_s = 0.0
        self.device = resolve_device(self.config.device)
        self._on_device: Params | None = None
        self._state_fn = state_fn(self.config)
        self._ann: AnnIndex | None = None

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        sessions: Sequence[np.ndarray],
        n_items: int,
        *,
        epochs: int | None = None,
        valid: Queries | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> SequenceModel:
        """Train from fresh parameters (``epochs`` defaults to the config's budget);
        ``valid`` cases are scored after each epoch (what ``on_epoch`` may prune on)."""
        self.n_items = n_items
        self.params = init_params(n_items, self.config, self.config.seed)
        self.history = []
        return self.train_more(sessions, epochs or self.config.epochs, valid, on_epoch)

    def train_more(
        self,
        sessions: Sequence[np.ndarray],
        epochs: int,
        valid: Queries | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> SequenceModel:
        """Continue training the current parameters (e.g. on all sessions after the head)."""
        if epochs <= 0:
            return self
        t0 = time.perf_counter()
        inputs, targets = training_windows(sessions, self.config.max_len)
        counts = item_counts(list(sessions), self.n_items)
        start = len(self.history) + 1
        evaluate = None
        if valid is not None and len(valid):
            cases = valid.slice(0, min(len(valid), self.config.valid_cases))
            evaluate = lambda p: self._evaluate(p, cases)  # noqa: E731
        params = jax.device_put(self.params, self.device)
        params, reports = train_epochs(
            params,
            inputs,
            targets,
            counts,
            self.config,
            epochs,
            self.device,
            first_epoch=start,
            evaluate=evaluate,
            on_epoch=on_epoch,
        )
        self.params = {k: np.asarray(v) for k, v in params.items()}
        self.history += reports
        self.fit_s += time.perf_counter() - t0
        self._reset()
        return self

    def _evaluate(self, params: Params, q: Queries) -> tuple[float, float]:
        """P@20 / MRR@20 over all items (exact) for the cases of ``q``."""
        states = self._states(params, q)
        items = params["item_emb"][1:]  # on the training device; states come back to it
        tops = [  # in slices: all-item scores of every case at once would be GBs
            np.asarray(jax.lax.top_k(states[i : i + 1024] @ items.T, 20)[1])
            for i in range(0, len(q), 1024)
        ]
        top = np.concatenate(tops) if tops else np.zeros((0, 20), np.int64)
        return precision_mrr(top, q.targets)

    # ------------------------------------------------------------------ serving
    def _reset(self) -> None:
        self._on_device = None
        self._ann = None

    @property
    def on_device(self) -> Params:
        if self._on_device is None:
            self._on_device = jax.device_put(self.params, self.device)
        return self._on_device

    def use_device(self, name: str) -> None:
        """Move scoring to another JAX device ('cpu' or 'cuda')."""
        self.config.device = name
        self.device = resolve_device(name)
        self._on_device = None

    def _states(self, params: Params, q: Queries, chunk: int = 4096) -> np.ndarray:
        """States in groups of equal padded width (as in training): most prefixes are
        short, and a window trimmed of its left padding gives the same state."""
        seqs = query_windows(q, self.config.max_len)
        out = np.zeros((len(seqs), self.config.dim), np.float32)
        for width, rows in length_groups(seqs, self.config.max_len):
            for start in range(0, len(rows), chunk):
                part = seqs[rows[start : start + chunk], -width:]
                padded = np.zeros((bucket(len(part)), width), np.int32)
                padded[: len(part)] = part
                got = self._state_fn(params, jax.device_put(padded, self.device))
                out[rows[start : start + chunk]] = np.asarray(got)[: len(part)]
        return out

    def states(self, q: Queries) -> np.ndarray:
        """(len(q), dim) float32: the session state after each prefix's newest item."""
        return self._states(self.on_device, q)

    @property
    def item_vectors(self) -> np.ndarray:
        """(n_items, dim): the output embedding of item i is row i."""
        return self.params["item_emb"][1:]

    @property
    def ann(self) -> AnnIndex:
        """FAISS index over the item vectors (inner product = the model's score)."""
        if self._ann is None:
            self._ann = AnnIndex(self.item_vectors, AnnConfig(kind=self.config.ann_kind))
        return self._ann

    def search(self, states: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, item ids), each (n, k): the model's top ``k`` items per state."""
        return self.ann.search(states, min(k, self.n_items))

    def pair_scores(self, states: np.ndarray, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The model's score of item ``items[i]`` after query ``rows[i]``'s prefix."""
        return np.einsum("ij,ij->i", states[rows], self.item_vectors[items])

    def recommend(self, q: Queries, k: int) -> np.ndarray:
        """(len(q), k) item ids ranked by the model alone."""
        return self.search(self.states(q), k)[1]

    # ------------------------------------------------------------------ artifact
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / "params.npz", **self.params)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "n_items": self.n_items,
            "config": self.config.to_dict(),
            "fit_s": self.fit_s,
            "history": [r.__dict__ for r in self.history],
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | None = None) -> SequenceModel:
        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise ValueError(f"{folder}: not a {FORMAT} v{VERSION} artifact")
        config = SequenceConfig.from_dict(manifest["config"])
        assert config is not None
        if device is not None:
            config.device = device
        model = cls(config)
        model.n_items = int(manifest["n_items"])
        model.fit_s = float(manifest.get("fit_s", 0.0))
        model.history = [EpochReport(**r) for r in manifest.get("history", [])]
        with np.load(folder / "params.npz") as z:
            model.params = {k: z[k] for k in z.files}
        if model.params["item_emb"].shape != (model.n_items + 1, config.dim):
            raise ValueError(f"{folder}: item table does not match n_items/dim")
        return model
