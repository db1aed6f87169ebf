"""Next-item quality of a catalog model on held-out sessions, next to popularity.

The protocol of the benchmark, applied to our own lake: every held-out session
``[v1..vn]`` gives the cases (v1..vi) -> v(i+1); a case is a hit when the next item is in
the top ``k``. P@k is the hit share, MRR@k the mean reciprocal rank (0 beyond k). When
shopper feature rows are known per session position, each case is asked with the row of
its target's position (the user as of just before that event), as serving would ask.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
#: A shopper's feature row (None: anonymous), as ``CatalogModel.recommend_batch`` takes it.
Row = Mapping[str, Any] | None
#: ``(prefixes most recent first, k, rows or None) -> ranked item ids per prefix``.
Recommend = Callable[[list[list[str]], int, list[Row] | None], list[list[str]]]


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
    train, held_out = split_aligned(sessions, sessions, holdout)
    return [list(s) for s in train], [list(s) for s in held_out]


def split_aligned(
    sessions: Sequence[Sequence[str]], aligned: Sequence[T], holdout: float = 0.1
) -> tuple[list[T], list[T]]:
    """``aligned`` (one entry per session, e.g. its feature rows) split exactly as
    ``split_sessions`` splits ``sessions``: sessions of 2+ items, the latest held out."""
    if len(aligned) != len(sessions):
        raise ValueError(f"{len(aligned)} entries for {len(sessions)} sessions")
    usable = [aligned[i] for i, s in enumerate(sessions) if len(s) >= 2]
    cut = int(len(usable) * (1 - holdout))
    return usable[:cut], usable[cut:]


def cases(
    sessions: Sequence[Sequence[str]],
    max_prefix: int = 20,
    rows: Sequence[Sequence[Row]] | None = None,
) -> tuple[list[list[str]], list[str], list[Row]]:
    """(prefix most-recent-first, next item, row of the next item's position) per case."""
    prefixes, targets, case_rows = [], [], []
    for s, session in enumerate(sessions):
        for i in range(1, len(session)):
            prefixes.append(list(reversed(session[max(0, i - max_prefix) : i])))
            targets.append(session[i])
            case_rows.append(rows[s][i] if rows is not None else None)
    return prefixes, targets, case_rows


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
    recommend: Recommend,
    train: Sequence[Sequence[str]],
    held_out: Sequence[Sequence[str]],
    k: int = 20,
    held_out_rows: Sequence[Sequence[Row]] | None = None,
) -> tuple[Quality, Quality]:
    """(model, popularity baseline) on the held-out sessions."""
    prefixes, targets, rows = cases(held_out, rows=held_out_rows)
    if not targets:
        raise ValueError("no held-out cases: the hold-out sessions have fewer than 2 items")
    model = score("model", recommend(prefixes, k, rows if held_out_rows else None), targets, k)
    pop = popularity(train, k)
    return model, score("popularity", [pop] * len(targets), targets, k)
