"""Exact counters of one test stage, per arm: who writes which field, how they are read.

WHY exact and per test stage: the promotion decision is a statistical test on counts, so
the counts must be counts (sets and integers, not HyperLogLog estimates), and a new test
must start at zero (the key names the test and its stage, see ``keys.ab_test``).

Writers (each adds to the same hash, on its own fields):
- the scorer, for every list it asks a model for (``lists_fields``): ``lists``,
  ``errors`` (failed calls or unusable answers), ``nonfinite``, ``len_sum`` and the score
  sums, and for the challenger ``overlap_sum``/``overlap_n`` (share of the champion's top
  10 it also ranks in its top 10, same shopper, same batch);
- attribution (``flashrec.attribution``): ``impressions``, ``clicks``, ``carts``,
  ``purchases``, ``revenue``; distinct shoppers shown the arm and distinct converters in
  two sets beside the hash.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import redis

from flashrec.adaptivity.rollout import ShadowReport
from flashrec.adaptivity.sequential import ArmStats
from flashrec.serving import keys

#: Counters outlive their test by two weeks (audit), then expire.
COUNTER_TTL_S = 14 * 86_400


def lists_fields(
    lists: Sequence[tuple[list[str], list[float]] | None],
) -> dict[str, int | float]:
    """Counter increments for a batch of one arm's answers (None = failed/unusable)."""
    ok = [x for x in lists if x is not None]
    scores = [s for _, sc in ok for s in sc]
    finite = [s for s in scores if math.isfinite(s)]
    return {
        "lists": len(lists),
        "errors": len(lists) - len(ok),
        "nonfinite": len(scores) - len(finite),
        "len_sum": sum(len(items) for items, _ in ok),
        "score_n": len(finite),
        "score_sum": float(sum(finite)),
        "score_sq": float(sum(s * s for s in finite)),
    }


def overlap_at(champion: Sequence[str], challenger: Sequence[str], k: int = 10) -> float:
    """Share of the champion's top k that the challenger also puts in its top k."""
    top = set(champion[:k])
    return len(top & set(challenger[:k])) / len(top) if top else 0.0


def add(pipe: Any, counters_key: str, arm: str, fields: dict[str, int | float]) -> None:
    """Queue increments on a pipeline (ints with HINCRBY, floats with HINCRBYFLOAT)."""
    key = keys.ab_test(counters_key, arm)
    for name, value in fields.items():
        if not value:
            continue
        if isinstance(value, float):
            pipe.hincrbyfloat(key, name, value)
        else:
            pipe.hincrby(key, name, value)
    pipe.expire(key, COUNTER_TTL_S)


def read_raw(client: redis.Redis, counters_key: str, arm: str) -> dict[str, float]:
    """Every field of one arm, plus ``sessions``/``conversions`` from the exact sets."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.ab_test(counters_key, arm))
    pipe.scard(keys.ab_test_shoppers(counters_key, arm))
    pipe.scard(keys.ab_test_converters(counters_key, arm))
    raw, sessions, conversions = pipe.execute()
    out = {_s(k): float(_s(v)) for k, v in raw.items()}
    out["sessions"], out["conversions"] = float(sessions), float(conversions)
    return out


def read_arm(client: redis.Redis, counters_key: str, arm: str, version: str) -> ArmStats:
    row = read_raw(client, counters_key, arm)
    return ArmStats(
        variant=arm,
        model_version=version,
        sessions=int(row["sessions"]),
        conversions=int(row["conversions"]),
        impressions=int(row.get("impressions", 0)),
        clicks=int(row.get("clicks", 0)),
        lists=int(row.get("lists", 0)),
        errors=int(row.get("errors", 0)),
    )


def _moments(row: dict[str, float]) -> tuple[float, float, float]:
    n = row.get("score_n", 0.0)
    if not n:
        return 0.0, 0.0, 0.0
    mean = row.get("score_sum", 0.0) / n
    var = max(row.get("score_sq", 0.0) / n - mean * mean, 0.0)
    ok_lists = row.get("lists", 0.0) - row.get("errors", 0.0)
    mean_len = row.get("len_sum", 0.0) / ok_lists if ok_lists > 0 else 0.0
    return mean, math.sqrt(var), mean_len


def read_shadow(
    client: redis.Redis, counters_key: str, champion: str, challenger: str
) -> ShadowReport:
    """The shadow stage's report: the challenger's lists, errors and scores beside the
    champion's, computed for the same shoppers."""
    ch = read_raw(client, counters_key, challenger)
    base = read_raw(client, counters_key, champion)
    mean, std, mean_len = _moments(ch)
    b_mean, b_std, b_len = _moments(base)
    overlap_n = ch.get("overlap_n", 0.0)
    return ShadowReport(
        lists=int(ch.get("lists", 0)),
        errors=int(ch.get("errors", 0)),
        nonfinite_scores=int(ch.get("nonfinite", 0)),
        mean_len=mean_len,
        champion_mean_len=b_len,
        score_mean=mean,
        score_std=std,
        champion_score_mean=b_mean,
        champion_score_std=b_std,
        overlap_at_10=ch.get("overlap_sum", 0.0) / overlap_n if overlap_n else 0.0,
    )


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
