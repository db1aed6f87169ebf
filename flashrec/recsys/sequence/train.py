"""Training: next-item cross-entropy at every position of every window, with Optax.

WHY a sampled softmax by default: the full softmax scores every item at every position
(43k items x 20 positions x 256 windows per step on DIGINETICA), which is most of the
cost on two CPU cores. Sharing one draw of negatives per step across the batch, with a
log-q correction for drawing them by popularity, keeps the gradient's expectation close
to the full softmax at a fraction of the cost; ``negatives=0`` trains with the full one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from flashrec.recsys.sequence.config import SequenceConfig
from flashrec.recsys.sequence.net import Params, encode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochReport:
    """One pass over the windows: mean loss, wall time and, with validation cases, the
    epoch-end P@20/MRR@20 over all items (x100)."""

    epoch: int
    loss: float
    seconds: float
    p_at_20: float | None = None
    mrr_at_20: float | None = None

    def summary(self) -> str:
        """One progress-log line."""
        valid = ""
        if self.mrr_at_20 is not None:
            valid = f" valid P@20={self.p_at_20:.2f} MRR@20={self.mrr_at_20:.2f}"
        return f"epoch {self.epoch}: loss={self.loss:.4f} {self.seconds:.1f}s{valid}"


#: Called after each epoch; raising (e.g. optuna.TrialPruned) stops the training.
EpochCallback = Callable[[EpochReport], None]


class NegativeSampler:
    """Items drawn by popularity^0.75 (padding never), with their log(K * q) correction."""

    def __init__(self, counts: np.ndarray, k: int, seed: int) -> None:
        w = np.power(np.asarray(counts, np.float64) + 1.0, 0.75)
        self.q = w / w.sum()
        self.cdf = np.cumsum(self.q)
        self.k = k
        self.rng = np.random.default_rng(seed)
        # index 0 is the padding item: its correction is never used
        self.logq = np.concatenate([[0.0], np.log(k * self.q)]).astype(np.float32)

    def draw(self) -> np.ndarray:
        u = self.rng.random(self.k) * self.cdf[-1]
        return (np.searchsorted(self.cdf, u) + 1).astype(np.int32)


def length_groups(inputs: np.ndarray, max_len: int) -> list[tuple[int, np.ndarray]]:
    """Windows grouped by padded width (4, 8, 16, max_len): most sessions are short, so
    a batch of full-width windows would be three quarters padding."""
    lengths = (inputs > 0).sum(1)
    widths = sorted({w for w in (4, 8, 16) if w < max_len} | {max_len})
    groups, lo = [], 0
    for w in widths:
        sel = np.flatnonzero((lengths > lo) & (lengths <= w))
        if len(sel):
            groups.append((w, sel))
        lo = w
    return groups


def epoch_batches(
    groups: list[tuple[int, np.ndarray]], tokens: int, rng: np.random.Generator
) -> list[tuple[int, np.ndarray]]:
    """Shuffled (width, window indices) batches of about ``tokens`` positions each."""
    batches = []
    for width, sel in groups:
        size = tokens // width
        order = rng.permutation(sel)
        batches += [(width, order[i : i + size]) for i in range(0, len(order), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


#: Compiled updates by what shapes the program (WHY: JAX compiles per function object,
#: and a study or a refit trains many models of one configuration in one process).
_STEPS: dict[tuple, Callable[..., tuple[Params, optax.OptState, jax.Array]]] = {}


def step_key(cfg: SequenceConfig) -> tuple:
    return (
        cfg.dim,
        cfg.layers,
        cfg.heads,
        cfg.max_len,
        cfg.dropout,
        cfg.negatives > 0,
        cfg.learning_rate,
        cfg.weight_decay,
    )


def make_step(cfg: SequenceConfig) -> Callable[..., tuple[Params, optax.OptState, jax.Array]]:
    """The jitted update: (params, opt_state, inputs, targets, negatives, logq, key)."""
    key = step_key(cfg)
    if key not in _STEPS:
        _STEPS[key] = _make_step(cfg, optimizer_for(cfg))
    return _STEPS[key]


def _make_step(
    cfg: SequenceConfig, optimizer: optax.GradientTransformation
) -> Callable[..., tuple[Params, optax.OptState, jax.Array]]:

    def loss_fn(
        params: Params,
        inputs: jax.Array,
        targets: jax.Array,
        negs: jax.Array,
        logq: jax.Array,
        key: jax.Array,
    ) -> jax.Array:
        h = encode(params, inputs, cfg, key)
        emb = params["item_emb"]
        valid = targets > 0
        if cfg.negatives > 0:
            pos = (h * emb[targets]).sum(-1) - logq[targets]
            neg = h @ emb[negs].T - logq[negs]
            neg = jnp.where(negs[None, None, :] == targets[..., None], -1e9, neg)
            loss = jax.nn.logsumexp(jnp.concatenate([pos[..., None], neg], -1), -1) - pos
        else:
            logits = h @ emb[1:].T
            pos = jnp.take_along_axis(logits, jnp.maximum(targets - 1, 0)[..., None], -1)[..., 0]
            loss = jax.nn.logsumexp(logits, -1) - pos
        return (loss * valid).sum() / jnp.maximum(valid.sum(), 1)

    @jax.jit
    def step(params, opt_state, inputs, targets, negs, logq, key):  # noqa: ANN001, ANN202
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs, targets, negs, logq, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def optimizer_for(cfg: SequenceConfig) -> optax.GradientTransformation:
    """Adam(W) with gradient clipping (attention blows up early without it)."""
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay),
    )


def train_epochs(
    params: Params,
    inputs: np.ndarray,
    targets: np.ndarray,
    item_counts: np.ndarray,
    cfg: SequenceConfig,
    epochs: int,
    device: jax.Device,
    *,
    first_epoch: int = 1,
    evaluate: Callable[[Params], tuple[float, float]] | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[Params, list[EpochReport]]:
    """``epochs`` shuffled passes over the windows; returns the new params and reports."""
    optimizer = optimizer_for(cfg)
    opt_state = jax.device_put(optimizer.init(params), device)
    step = make_step(cfg)
    k = max(cfg.negatives, 1)
    sampler = NegativeSampler(item_counts, k, cfg.seed + first_epoch)
    logq = jax.device_put(sampler.logq, device)
    rng = np.random.default_rng(cfg.seed + first_epoch)
    key = jax.random.PRNGKey(cfg.seed + first_epoch)
    groups = length_groups(inputs, cfg.max_len)
    reports: list[EpochReport] = []
    for epoch in range(first_epoch, first_epoch + epochs):
        t0 = time.perf_counter()
        losses = []
        for width, idx in epoch_batches(groups, cfg.batch_size * cfg.max_len, rng):
            xb = np.zeros((cfg.batch_size * cfg.max_len // width, width), np.int32)
            yb = np.zeros_like(xb)
            xb[: len(idx)], yb[: len(idx)] = inputs[idx, -width:], targets[idx, -width:]
            key, sub = jax.random.split(key)
            negs = sampler.draw() if cfg.negatives > 0 else np.ones(1, np.int32)
            params, opt_state, loss = step(
                params,
                opt_state,
                jax.device_put(xb, device),
                jax.device_put(yb, device),
                jax.device_put(negs, device),
                logq,
                sub,
            )
            losses.append(loss)
        mean_loss = float(jnp.mean(jnp.stack(losses))) if losses else float("nan")
        p = mrr = None
        if evaluate is not None:
            p, mrr = evaluate(params)
        report = EpochReport(epoch, mean_loss, time.perf_counter() - t0, p, mrr)
        reports.append(report)
        log.info("sequence model %s", report.summary())
        if on_epoch is not None:
            on_epoch(report)
    return params, reports
