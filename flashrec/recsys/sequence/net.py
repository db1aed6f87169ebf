"""The network: causal self-attention over the session's items (SASRec-style), in JAX.

WHY written by hand in ``jax.numpy`` (no Flax): the model is a few dozen lines, its
parameters are one flat dict of arrays (saved as ``.npz`` with the rest of the artifact),
and Flax would add orbax-checkpoint and tensorstore to a venv that already carries the
whole card. Pre-layer-norm blocks; the item embedding table is also the output layer
(scores are inner products, so tier 1 can search them with FAISS).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from flashrec.recsys.sequence.config import SequenceConfig

Params = dict[str, jax.Array]


def init_params(n_items: int, cfg: SequenceConfig, seed: int) -> dict[str, np.ndarray]:
    """Fresh parameters (numpy, float32); row 0 of ``item_emb`` is the padding item."""
    rng = np.random.default_rng(seed)
    d = cfg.dim

    def normal(*shape: int, std: float) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    p: dict[str, np.ndarray] = {
        "item_emb": normal(n_items + 1, d, std=1.0 / math.sqrt(d)),
        "pos_emb": normal(cfg.max_len, d, std=0.02),
        "ln_f.g": np.ones(d, np.float32),
        "ln_f.b": np.zeros(d, np.float32),
    }
    p["item_emb"][0] = 0.0
    for i in range(cfg.layers):
        for name in ("q", "k", "v", "o", "ff1", "ff2"):
            p[f"l{i}.w{name}"] = normal(d, d, std=1.0 / math.sqrt(d))
            p[f"l{i}.b{name}"] = np.zeros(d, np.float32)
        for ln in ("ln1", "ln2"):
            p[f"l{i}.{ln}.g"] = np.ones(d, np.float32)
            p[f"l{i}.{ln}.b"] = np.zeros(d, np.float32)
    return p


def _layer_norm(x: jax.Array, g: jax.Array, b: jax.Array) -> jax.Array:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-6) * g + b


def _dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    if key is None or rate <= 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def encode(
    params: Params,
    seqs: jax.Array,
    cfg: SequenceConfig,
    key: jax.Array | None = None,
) -> jax.Array:
    """Hidden states (batch, n, dim) of left-padded windows ``seqs`` (0 = padding, n <=
    max_len).

    Position t attends to positions <= t that hold an item; ``key`` turns dropout on.
    """
    d, h = cfg.dim, cfg.heads
    valid = seqs > 0
    keys = list(jax.random.split(key, 2 + 2 * cfg.layers)) if key is not None else None

    def next_key() -> jax.Array | None:
        return keys.pop() if keys is not None else None

    n = seqs.shape[1]
    # Positions count back from the newest item (last column), so a window trimmed of
    # its left padding gives the same states: training batches use that to skip padding.
    x = params["item_emb"][seqs] * math.sqrt(d) + params["pos_emb"][-n:][None]
    x = _dropout(x, cfg.dropout, next_key()) * valid[..., None]
    causal = jnp.tril(jnp.ones((n, n), bool))
    mask = causal[None, None] & valid[:, None, None, :]  # (batch, 1, query, key)
    for i in range(cfg.layers):
        pre = f"l{i}."
        y = _layer_norm(x, params[pre + "ln1.g"], params[pre + "ln1.b"])

        def heads(w: str, y: jax.Array = y, pre: str = pre) -> jax.Array:
            z = y @ params[pre + "w" + w] + params[pre + "b" + w]
            return z.reshape(z.shape[0], n, h, d // h).transpose(0, 2, 1, 3)

        q, k, v = heads("q"), heads("k"), heads("v")
        att = (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(d // h)
        att = jax.nn.softmax(jnp.where(mask, att, -1e9), axis=-1)
        z = (att @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        z = z @ params[pre + "wo"] + params[pre + "bo"]
        x = x + _dropout(z, cfg.dropout, next_key())
        y = _layer_norm(x, params[pre + "ln2.g"], params[pre + "ln2.b"])
        y = jax.nn.gelu(y @ params[pre + "wff1"] + params[pre + "bff1"])
        y = y @ params[pre + "wff2"] + params[pre + "bff2"]
        x = (x + _dropout(y, cfg.dropout, next_key())) * valid[..., None]
    return _layer_norm(x, params["ln_f.g"], params["ln_f.b"])


def last_state(params: Params, seqs: jax.Array, cfg: SequenceConfig) -> jax.Array:
    """(batch, dim): the state after each window's newest item (its last column)."""
    return encode(params, seqs, cfg)[:, -1, :]
