"""Sessions and queries as fixed-size, left-padded windows of item indices.

WHY fixed shapes: JAX compiles one program per input shape, so every batch is
(batch, max_len) with 0 as padding (item i is index i + 1). Left padding puts each
window's newest item in the last column, which is the state that serving reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flashrec.recsys.data import Queries

PAD = 0


def training_windows(sessions: Sequence[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (n_windows, max_len) int32: targets[t] follows inputs[t].

    A session of n items gives n - 1 (prefix, next item) targets, each in exactly one
    window: windows of max_len targets are cut from the session's end backwards, so the
    newest items always keep their full left context.
    """
    ins: list[np.ndarray] = []
    outs: list[np.ndarray] = []
    for s in sessions:
        s = np.asarray(s, dtype=np.int64) + 1
        end = len(s)
        while end >= 2:
            start = max(0, end - max_len - 1)
            chunk = s[start:end]
            pad = max_len - (len(chunk) - 1)
            ins.append(np.concatenate([np.zeros(pad, np.int64), chunk[:-1]]))
            outs.append(np.concatenate([np.zeros(pad, np.int64), chunk[1:]]))
            end = start + 1
    if not ins:
        empty = np.zeros((0, max_len), np.int32)
        return empty, empty.copy()
    return np.stack(ins).astype(np.int32), np.stack(outs).astype(np.int32)


def query_windows(q: Queries, max_len: int) -> np.ndarray:
    """(len(q), max_len) int32: each prefix's newest ``max_len`` items, left-padded."""
    out = np.zeros((len(q), max_len), np.int32)
    steps = q.steps_from_end
    keep = steps <= max_len
    out[q.row_of_item[keep], max_len - steps[keep]] = q.items[keep] + 1
    return out


def bucket(n: int, smallest: int = 8) -> int:
    """Padded batch size: the next power of two (few shapes, so few compilations)."""
    size = smallest
    while size < n:
        size *= 2
    return size
