"""Next-item quality of a catalog model on held-out sessions, next to popularity.

The protocol of the benchmark, applied to our own lake: every held-out session
``[v1..vn]`` gives the cases (v1..vi) -> v(i+1); a case is a hit when the next item is in
the top ``k``. P@k is the hit share, MRR@k the mean reciprocal rank (0 beyond k).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Quality:
    name: str
    precision: float
    mrr: float
    cases: int

    def as_dict(self) -> dict[str, float]:
        return {
            "P@20": round(self.precision, 4),
            "MRR@20": round(self.mrr, 4),
            "cases": float(self.cases),
        }


def split_sessions(
    sessions: Sequence[Sequence[str]], holdout: float = 0.1
) -> tuple[list[list[str]], list[list[str]]]:
    """Chronological split: the latest ``holdout`` share of sessions is held out."""
    usable = [list(s) for s in sessions if len(s) >= 2]
    cut = int(len(usable) * (1 - holdout))
    return usable[:cut], usable[cut:]


def cases(
    sessions: Sequence[Sequence[str]], max_prefix: int = 20
) -> tuple[list[list[str]], list[str]]:
    """(prefix most-recent-first, next item) for every position of every session."""
    prefixes, targets = [], []
    for session in sessions:
        for i in range(1, len(session)):
            prefixes.append(list(reversed(session[max(0, i - max_prefix) : i])))
            targets.append(session[i])
    return prefixes, targets


def score(
    name: str, ranked: Sequence[Sequence[str]], targets: Sequence[str], k: int = 20
) -> Quality:
    hits, rr = 0, 0.0
    for top, target in zip(ranked, targets, strict=True):
        top = list(top[:k])
        if target in top:
            hits += 1
            rr += 1.0 / (top.index(target) + 1)
    n = max(len(targets), 1)
    return Quality(name, 100.0 * hits / n, 100.0 * rr / n, len(targets))


def popularity(train: Sequence[Sequence[str]], k: int = 20) -> list[str]:
    counts = Counter(item for session in train for item in session)
    return [item for item, _ in counts.most_common(k)]


def evaluate(
    recommend: Callable[[list[list[str]], int], list[list[str]]],
    train: Sequence[Sequence[str]],
    held_out: Sequence[Sequence[str]],
    k: int = 20,
) -> tuple[Quality, Quality]:
    """(model, popularity baseline) on the held-out sessions."""
    prefixes, targets = cases(held_out)
    if not targets:
        raise ValueError("no held-out cases: the hold-out sessions have fewer than 2 items")
    model = score("model", recommend(prefixes, k), targets, k)
    pop = popularity(train, k)
    return model, score("popularity", [pop] * len(targets), targets, k)
